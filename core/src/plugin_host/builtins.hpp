#pragma once
// The plugins linked into every binary: pool=none, queue=inproc, store=memory, compression=none,
// autoscaler=none. They are reached through the same descriptors as file plugins.
#include <span>
#include <string_view>

#include "phasekit/plugin/abi.h"

namespace phasekit::plugin_host {

struct Builtin {
  phk_kind kind;
  std::string_view name;
  phk_entry_fn entry;
};

std::span<const Builtin> builtins() noexcept;

}  // namespace phasekit::plugin_host
