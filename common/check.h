// BROOK_CHECK: an always-on invariant check that logs and aborts.
#pragma once

#include <cstdio>
#include <cstdlib>

#define BROOK_CHECK(cond)                                                              \
  do {                                                                                 \
    if (!(cond)) {                                                                     \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);    \
      std::abort();                                                                    \
    }                                                                                  \
  } while (0)
