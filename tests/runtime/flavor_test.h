// A fixture that runs each test on a current_thread and on a 2-worker multi_thread runtime.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "runtime/runtime.h"

namespace shoal::rt::testing {

inline runtime_options options_for(flavor f, bool paused = false) {
  runtime_options o;
  o.kind = f;
  o.workers = 2;
  o.start_paused = paused;
  return o;
}

class flavor_test : public ::testing::TestWithParam<flavor> {
 protected:
  runtime rt_{options_for(GetParam())};
};

class paused_flavor_test : public ::testing::TestWithParam<flavor> {
 protected:
  runtime rt_{options_for(GetParam(), /*paused=*/true)};
};

inline std::string flavor_name(const ::testing::TestParamInfo<flavor>& info) {
  return info.param == flavor::current_thread ? "current_thread" : "multi_thread";
}

}  // namespace shoal::rt::testing

#define SHOAL_ALL_FLAVORS(suite)                                                                 \
  INSTANTIATE_TEST_SUITE_P(                                                                      \
      flavors, suite,                                                                            \
      ::testing::Values(::shoal::rt::flavor::current_thread, ::shoal::rt::flavor::multi_thread), \
      ::shoal::rt::testing::flavor_name)
