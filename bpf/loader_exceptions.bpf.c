// SPDX-License-Identifier: GPL-2.0
/* Loader test: bpf_throw() with an exception callback named by the
 * exception_callback: decl tag.  Nothing calls the callback: the loader must
 * append it to the program; the program's return value is then its own. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

#define __exception_cb(name) __attribute__((btf_decl_tag("exception_callback:" #name)))

extern void bpf_throw(__u64 cookie) __ksym;

__u64 callback_cookie = 0;

__noinline int catch_all(__u64 cookie)
{
	callback_cookie = cookie;
	return (int)cookie * 2 + 1;
}

static __noinline int check_len(struct __sk_buff *skb)
{
	if (skb->len > 100)
		bpf_throw(skb->len);
	return skb->len;
}

/* throws for packets over 100 bytes: returns 2 * len + 1 then, len otherwise */
SEC("tc") __exception_cb(catch_all)
int throw_long(struct __sk_buff *skb)
{
	return check_len(skb);
}

/* no callback: an uncaught bpf_throw() makes the program return 0 */
SEC("tc")
int throw_plain(struct __sk_buff *skb)
{
	if (skb->len > 100)
		bpf_throw(7);
	return 1;
}
