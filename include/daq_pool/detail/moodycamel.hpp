// The one include point for moodycamel's headers, whichever layout is
// installed: <moodycamel/...> (upstream CMake install, vcpkg),
// <concurrentqueue/...> (Debian, Ubuntu) or the bare header next to the
// source (a FetchContent checkout or a copy in the include path).
//
// lightweightsemaphore.h is not self-contained: it uses the
// MOODYCAMEL_DELETE_FUNCTION macro and assert() that concurrentqueue.h
// provides (upstream's blockingconcurrentqueue.h includes the two in this
// order), so concurrentqueue.h always comes first.
#pragma once

#if __has_include(<moodycamel/lightweightsemaphore.h>)
#include <moodycamel/concurrentqueue.h>
#include <moodycamel/lightweightsemaphore.h>
#elif __has_include(<concurrentqueue/moodycamel/lightweightsemaphore.h>)
#include <concurrentqueue/moodycamel/concurrentqueue.h>
#include <concurrentqueue/moodycamel/lightweightsemaphore.h>
#elif __has_include(<concurrentqueue/lightweightsemaphore.h>)
#include <concurrentqueue/concurrentqueue.h>
#include <concurrentqueue/lightweightsemaphore.h>
#elif __has_include(<lightweightsemaphore.h>)
#include <concurrentqueue.h>
#include <lightweightsemaphore.h>
#else
#error "daq_pool needs moodycamel concurrentqueue (Debian: libconcurrentqueue-dev; vcpkg: concurrentqueue)"
#endif
