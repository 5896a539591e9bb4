#pragma once
// compression=zlib: conversation entries compressed one by one with zlib.
//
// Formats written (option `format`):
//   deflate_dict (default)  F9 01 | LEB128 length of the entry | raw DEFLATE (RFC 1951) with the preset
//                           dictionary of version 1 (conversation_dictionary.hpp) | CRC-32 of the entry, LE
//   gzip                    one gzip member (RFC 1952), what `gzip -c` writes and `gzip -d` reads
// Read, whatever the option: both of the above (gzip with any number of members), and anything else
// as it is: entries stored before compression was enabled are JSON text, and 0xF9 cannot start UTF-8.
//
// Thread-safe: z_streams are leased from a pool under a mutex, each used by one call at a time.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "phasekit/plugin/compression.hpp"

namespace phasekit::compression_zlib {

enum class Format : std::uint8_t { deflate_dict, gzip };

std::string_view format_name(Format f) noexcept;
std::optional<Format> parse_format(std::string_view name) noexcept;

inline constexpr unsigned char kFrameMagic = 0xF9;
inline constexpr unsigned char kFrameVersion = 1;
inline constexpr std::size_t kMaxEntryBytesLimit = std::size_t{1} << 30;  // zlib's uInt counts, and sanity

struct ZlibConfig {
  Format format = Format::deflate_dict;
  int level = 6;                                   // 1 (fastest) .. 9 (smallest)
  std::size_t max_entry_bytes = std::size_t{16} << 20;  // larger entries are refused both ways
};

class ZlibCompression final : public plugin::CompressionStrategy {
 public:
  explicit ZlibCompression(const ZlibConfig& config);
  ~ZlibCompression() override;
  ZlibCompression(const ZlibCompression&) = delete;
  ZlibCompression& operator=(const ZlibCompression&) = delete;

  Status compress(std::string_view in, std::string& out) noexcept override;
  Status decompress(std::string_view in, std::string& out) noexcept override;

  [[nodiscard]] const ZlibConfig& config() const noexcept { return config_; }

 private:
  struct Pools;
  Status compress_dict(std::string_view in, std::string& out);
  Status compress_gzip(std::string_view in, std::string& out);
  Status decompress_dict(std::string_view in, std::string& out);
  Status decompress_gzip(std::string_view in, std::string& out);

  ZlibConfig config_;
  std::unique_ptr<Pools> pools_;
};

}  // namespace phasekit::compression_zlib
