// Which sanitizer instruments this translation unit: GCC says so with __SANITIZE_*__, clang with
// __has_feature. The userspace path behaves differently under one only where the sanitizer cannot
// follow what it does; docs/userspace.md lists each place.
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/sanitizers.hpp is internal: include a public numamove header"
#endif

#if defined(__SANITIZE_ADDRESS__)
#define NUMAMOVE_DETAIL_ADDRESS_SANITIZER 1
#endif
#if defined(__SANITIZE_THREAD__)
#define NUMAMOVE_DETAIL_THREAD_SANITIZER 1
#endif
#if defined(__has_feature)
#if __has_feature(address_sanitizer) && !defined(NUMAMOVE_DETAIL_ADDRESS_SANITIZER)
#define NUMAMOVE_DETAIL_ADDRESS_SANITIZER 1
#endif
#if __has_feature(thread_sanitizer) && !defined(NUMAMOVE_DETAIL_THREAD_SANITIZER)
#define NUMAMOVE_DETAIL_THREAD_SANITIZER 1
#endif
#if __has_feature(memory_sanitizer)
#define NUMAMOVE_DETAIL_MEMORY_SANITIZER 1
#endif
#endif
