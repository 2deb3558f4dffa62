// Catch2 for numamove's tests: version 3 where installed, else the 2.13 single header.
#pragma once

#if __has_include(<catch2/catch_all.hpp>)
#include <catch2/catch_all.hpp>
#else
#include <catch2/catch.hpp>
#endif
