// compression=none: entries are stored as they are.
#include "phasekit/plugin/export.hpp"
#include "phasekit/plugin_options.hpp"

namespace phasekit::builtin {
namespace {

class NoCompression final : public plugin::CompressionStrategy {
 public:
  Status compress(std::string_view in, std::string& out) noexcept override { return copy(in, out); }
  Status decompress(std::string_view in, std::string& out) noexcept override { return copy(in, out); }

 private:
  static Status copy(std::string_view in, std::string& out) noexcept {
    try {
      out.assign(in);
      return {};
    } catch (const std::bad_alloc&) {
      return Status(Code::internal, "out of memory");
    }
  }
};

struct Factory {
  static std::unique_ptr<plugin::CompressionStrategy> create(plugin::HostServices&, std::string_view json) {
    PluginOptions options(json);
    options.ignore("format");  // compression=zlib's settings, passed to every compression plugin
    options.ignore("level");
    options.ignore("max_entry_bytes");
    options.finish();
    return std::make_unique<NoCompression>();
  }
};

}  // namespace

PHASEKIT_BUILTIN_PLUGIN(compression_none_entry, PHK_KIND_COMPRESSION, "none", "1.0.0",
                        "entries stored as they are", Factory)
}  // namespace phasekit::builtin
