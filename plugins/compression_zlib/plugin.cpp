// compression=zlib: the entry point and the factory that turns its JSON options into a ZlibConfig.
#include <stdexcept>

#include "phasekit/plugin/export.hpp"
#include "phasekit/plugin_options.hpp"
#include "zlib_compression.hpp"

namespace phasekit::compression_zlib {
namespace {

struct Factory {
  static std::unique_ptr<plugin::CompressionStrategy> create(plugin::HostServices&, std::string_view json) {
    PluginOptions options(json);
    ZlibConfig c;
    const auto parsed =
        parse_format(options.one_of("format", std::string(format_name(c.format)), {"deflate_dict", "gzip"}));
    if (!parsed) {
      throw std::logic_error("compression=zlib: a format it lists but cannot parse");
    }
    c.format = *parsed;
    c.level = static_cast<int>(options.integer("level", c.level, 1, 9));
    c.max_entry_bytes = static_cast<std::size_t>(options.integer(
        "max_entry_bytes", static_cast<std::int64_t>(c.max_entry_bytes), 1024, static_cast<std::int64_t>(kMaxEntryBytesLimit)));
    options.finish();
    return std::make_unique<ZlibCompression>(c);
  }
};

}  // namespace
}  // namespace phasekit::compression_zlib

PHASEKIT_PLUGIN(PHK_KIND_COMPRESSION, "zlib", "1.0.0",
                "conversation entries compressed with zlib: DEFLATE with a preset dictionary, or gzip",
                phasekit::compression_zlib::Factory)
