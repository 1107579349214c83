// SPDX-License-Identifier: GPL-2.0
#define ARENA_ADDRESS (1ull << 44)
#include "loader_arena.h"
