#pragma once
// The build signature: everything that must agree between host and plugin for C++ objects to cross
// the boundary (nginx's module signature, for the same reason). Computed from the compiling TU's
// own macros, so a plugin built with other flags carries another signature.
#include <boost/version.hpp>

#include <cstddef>  // defines _GLIBCXX_USE_CXX11_ABI

#define PHK_STRINGIFY_(x) #x
#define PHK_STRINGIFY(x) PHK_STRINGIFY_(x)

#if defined(__clang__)
#define PHK_SIG_COMPILER "clang-" PHK_STRINGIFY(__clang_major__)
#elif defined(__GNUC__)
#define PHK_SIG_COMPILER "gcc-" PHK_STRINGIFY(__GNUC__)
#else
#define PHK_SIG_COMPILER "unknown"
#endif

#if defined(_GLIBCXX_USE_CXX11_ABI)
#define PHK_SIG_CXXABI "|cxx11abi=" PHK_STRINGIFY(_GLIBCXX_USE_CXX11_ABI)
#else
#define PHK_SIG_CXXABI "|cxx11abi=none"
#endif

#if defined(__SANITIZE_ADDRESS__)
#define PHK_SIG_ASAN "|asan=1"
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PHK_SIG_ASAN "|asan=1"
#endif
#endif
#ifndef PHK_SIG_ASAN
#define PHK_SIG_ASAN "|asan=0"
#endif

#if defined(NDEBUG)
#define PHK_SIG_NDEBUG "|ndebug=1"
#else
#define PHK_SIG_NDEBUG "|ndebug=0"
#endif

#define PHK_BUILD_SIGNATURE \
  PHK_SIG_COMPILER PHK_SIG_CXXABI "|boost-" PHK_STRINGIFY(BOOST_VERSION) PHK_SIG_ASAN PHK_SIG_NDEBUG
