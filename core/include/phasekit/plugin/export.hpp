#pragma once
// PHASEKIT_PLUGIN(kind, "name", "version", "summary", Factory) in exactly one .cpp of a plugin
// generates its only exported symbol, phasekit_plugin_entry. Factory is a type with
//
//   static std::unique_ptr<Interface> create(phasekit::plugin::HostServices& host, std::string_view config_json);
//
// that may throw (std::exception) to refuse a configuration; the message becomes the one-line load
// error. Nothing throws through the C boundary. Built-ins use PHASEKIT_BUILTIN_PLUGIN, which makes
// the same descriptor under a C++ name instead of the exported symbol.
#include <cstdio>
#include <exception>
#include <memory>
#include <string_view>

#include "phasekit/plugin/abi.h"
#include "phasekit/plugin/autoscaler.hpp"
#include "phasekit/plugin/build_signature.hpp"
#include "phasekit/plugin/compression.hpp"
#include "phasekit/plugin/host.hpp"
#include "phasekit/plugin/pool.hpp"
#include "phasekit/plugin/queue.hpp"
#include "phasekit/plugin/store.hpp"

namespace phasekit::plugin {

template <phk_kind K>
struct InterfaceOf;
template <> struct InterfaceOf<PHK_KIND_POOL> { using type = PoolStrategy; };
template <> struct InterfaceOf<PHK_KIND_QUEUE> { using type = QueueStrategy; };
template <> struct InterfaceOf<PHK_KIND_STORE> { using type = StoreStrategy; };
template <> struct InterfaceOf<PHK_KIND_COMPRESSION> { using type = CompressionStrategy; };
template <> struct InterfaceOf<PHK_KIND_AUTOSCALER> { using type = AutoscalerStrategy; };

namespace detail {

inline void copy_error(char* err, std::size_t cap, std::string_view what) noexcept {
  if (err == nullptr || cap == 0) {
    return;
  }
  const std::size_t n = what.size() < cap - 1 ? what.size() : cap - 1;
  for (std::size_t i = 0; i < n; ++i) {
    err[i] = (what[i] == '\n' || what[i] == '\r') ? ' ' : what[i];  // one line, always
  }
  err[n] = '\0';
}

template <phk_kind K, class Factory>
int create(void* host, const char* config, std::size_t len, void** out, char* err, std::size_t cap) noexcept {
  using Interface = typename InterfaceOf<K>::type;
  try {
    if (host == nullptr || out == nullptr) {
      copy_error(err, cap, "host passed no services or no output slot");
      return 1;
    }
    std::unique_ptr<Interface> instance =
        Factory::create(*static_cast<HostServices*>(host), std::string_view(config == nullptr ? "" : config, len));
    if (!instance) {
      copy_error(err, cap, "factory returned no instance");
      return 1;
    }
    *out = instance.release();  // Interface* → void*; the host casts back to Interface*
    return 0;
  } catch (const std::exception& e) {
    copy_error(err, cap, e.what());
  } catch (...) {
    copy_error(err, cap, "unknown exception");
  }
  return 1;
}

template <phk_kind K>
void destroy(void* instance) noexcept {
  delete static_cast<typename InterfaceOf<K>::type*>(instance);
}

template <phk_kind K, class Factory>
constexpr phk_descriptor make_descriptor(const char* name, const char* version, const char* summary) noexcept {
  return phk_descriptor{PHK_ABI_VERSION,       sizeof(phk_descriptor), PHK_BUILD_SIGNATURE,
                        static_cast<uint32_t>(K), name,                version,
                        summary,               &create<K, Factory>,    &destroy<K>};
}

}  // namespace detail
}  // namespace phasekit::plugin

#define PHASEKIT_PLUGIN(kind, name, version, summary, Factory)                                         \
  extern "C" PHK_EXPORT const phk_descriptor* phasekit_plugin_entry(void) {                            \
    static constexpr phk_descriptor descriptor =                                                       \
        ::phasekit::plugin::detail::make_descriptor<kind, Factory>(name, version, summary);            \
    return &descriptor;                                                                                \
  }

#define PHASEKIT_BUILTIN_PLUGIN(function, kind, name, version, summary, Factory)                       \
  const phk_descriptor* function() {                                                                   \
    static constexpr phk_descriptor descriptor =                                                       \
        ::phasekit::plugin::detail::make_descriptor<kind, Factory>(name, version, summary);            \
    return &descriptor;                                                                                \
  }
