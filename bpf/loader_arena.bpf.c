// SPDX-License-Identifier: GPL-2.0
#include "loader_arena.h"
