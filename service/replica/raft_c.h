// raft_c: libraft's headers, which declare C functions without extern "C" of their own.
#pragma once

#include "uv.h"

extern "C" {
#include "raft.h"
#include "raft/uv.h"
}
