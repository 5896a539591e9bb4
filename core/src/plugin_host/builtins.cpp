#include "builtins.hpp"

#include <array>

namespace phasekit::builtin {
const phk_descriptor* pool_none_entry();
const phk_descriptor* queue_inproc_entry();
const phk_descriptor* store_memory_entry();
const phk_descriptor* compression_none_entry();
const phk_descriptor* autoscaler_none_entry();
}  // namespace phasekit::builtin

namespace phasekit::plugin_host {

std::span<const Builtin> builtins() noexcept {
  static constexpr std::array<Builtin, 5> kBuiltins{{
      {PHK_KIND_POOL, "none", &builtin::pool_none_entry},
      {PHK_KIND_QUEUE, "inproc", &builtin::queue_inproc_entry},
      {PHK_KIND_STORE, "memory", &builtin::store_memory_entry},
      {PHK_KIND_COMPRESSION, "none", &builtin::compression_none_entry},
      {PHK_KIND_AUTOSCALER, "none", &builtin::autoscaler_none_entry},
  }};
  return kBuiltins;
}

}  // namespace phasekit::plugin_host
