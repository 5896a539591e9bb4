#include "zlib_compression.hpp"

#include <fmt/format.h>
#include <zlib.h>

#include <algorithm>
#include <functional>
#include <mutex>
#include <new>
#include <utility>
#include <vector>

#include "conversation_dictionary.hpp"

namespace phasekit::compression_zlib {
namespace {

constexpr int kRawDeflate = -15;  // windowBits: raw DEFLATE, 32 KiB window
constexpr int kGzip = 15 + 16;    // windowBits: gzip wrapper
constexpr int kMemLevel = 8;
constexpr std::size_t kPooledStreams = 32;  // per kind; more concurrent calls make (and free) their own

Status bad_request(std::string message) { return Status(Code::bad_request, std::move(message)); }
Status out_of_memory() { return Status(Code::internal, "out of memory"); }

std::string zlib_message(const z_stream& s, int rc) {
  if (s.msg != nullptr) {
    return s.msg;
  }
  return rc == Z_MEM_ERROR ? "out of memory" : fmt::format("zlib error {}", rc);
}

/// One z_stream, initialised once and reset between uses; always freed (deflateEnd/inflateEnd).
class Deflater {
 public:
  Deflater(int window_bits, int level) {
    if (deflateInit2(&s_, level, Z_DEFLATED, window_bits, kMemLevel, Z_DEFAULT_STRATEGY) != Z_OK) {
      throw std::bad_alloc();
    }
  }
  ~Deflater() { deflateEnd(&s_); }
  Deflater(const Deflater&) = delete;
  Deflater& operator=(const Deflater&) = delete;
  z_stream& get() noexcept { return s_; }

 private:
  z_stream s_{};
};

class Inflater {
 public:
  explicit Inflater(int window_bits) {
    if (inflateInit2(&s_, window_bits) != Z_OK) {
      throw std::bad_alloc();
    }
  }
  ~Inflater() { inflateEnd(&s_); }
  Inflater(const Inflater&) = delete;
  Inflater& operator=(const Inflater&) = delete;
  z_stream& get() noexcept { return s_; }

 private:
  z_stream s_{};
};

/// Streams ready for reuse. A lease takes one (or makes one) and gives it back when it ends, so no
/// stream is ever used by two calls at once.
template <class Stream>
class Pool {
 public:
  template <class... Args>
  explicit Pool(Args... args) : make_([=] { return std::make_unique<Stream>(args...); }) {}

  class Lease {
   public:
    Lease(Pool& pool, std::unique_ptr<Stream> s) : pool_(pool), stream_(std::move(s)) {}
    ~Lease() { pool_.give_back(std::move(stream_)); }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    z_stream& operator*() noexcept { return stream_->get(); }

   private:
    Pool& pool_;
    std::unique_ptr<Stream> stream_;
  };

  /// Throws std::bad_alloc when zlib cannot allocate a new stream.
  Lease take() {
    {
      std::lock_guard lock(mutex_);
      if (!free_.empty()) {
        auto s = std::move(free_.back());
        free_.pop_back();
        return Lease(*this, std::move(s));
      }
    }
    return Lease(*this, make_());
  }

 private:
  void give_back(std::unique_ptr<Stream> s) noexcept {
    std::lock_guard lock(mutex_);
    if (free_.size() < kPooledStreams) {
      try {
        free_.push_back(std::move(s));
      } catch (...) {  // s is freed by its destructor
      }
    }
  }

  std::function<std::unique_ptr<Stream>()> make_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<Stream>> free_;
};

void put_varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

/// false when the varint is cut short or longer than 64 bits.
bool get_varint(std::string_view& in, std::uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64 && !in.empty(); shift += 7) {
    const auto byte = static_cast<unsigned char>(in.front());
    in.remove_prefix(1);
    v |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      return true;
    }
  }
  return false;
}

std::uint32_t crc_of(std::string_view data) {
  return static_cast<std::uint32_t>(
      crc32(crc32(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(data.data()), static_cast<uInt>(data.size())));
}

Bytef* bytes(std::string& s) noexcept { return reinterpret_cast<Bytef*>(s.data()); }
Bytef* bytes(std::string_view s) noexcept {
  return const_cast<Bytef*>(reinterpret_cast<const Bytef*>(s.data()));  // zlib's next_in is not const
}

}  // namespace

struct ZlibCompression::Pools {
  explicit Pools(int level)
      : raw_deflate(kRawDeflate, level), gzip_deflate(kGzip, level), raw_inflate(kRawDeflate), gzip_inflate(kGzip) {}
  Pool<Deflater> raw_deflate;
  Pool<Deflater> gzip_deflate;
  Pool<Inflater> raw_inflate;
  Pool<Inflater> gzip_inflate;
};

std::string_view format_name(Format f) noexcept { return f == Format::gzip ? "gzip" : "deflate_dict"; }

std::optional<Format> parse_format(std::string_view name) noexcept {
  if (name == "deflate_dict") {
    return Format::deflate_dict;
  }
  if (name == "gzip") {
    return Format::gzip;
  }
  return std::nullopt;
}

ZlibCompression::ZlibCompression(const ZlibConfig& config)
    : config_(config), pools_(std::make_unique<Pools>(config.level)) {}

ZlibCompression::~ZlibCompression() = default;

Status ZlibCompression::compress(std::string_view in, std::string& out) noexcept {
  if (in.size() > config_.max_entry_bytes) {
    return bad_request(fmt::format("entry of {} bytes is over max_entry_bytes={}", in.size(), config_.max_entry_bytes));
  }
  try {
    Status s = config_.format == Format::gzip ? compress_gzip(in, out) : compress_dict(in, out);
    if (!s.ok()) {
      out.clear();  // nothing half-written is ever handed on
    }
    return s;
  } catch (const std::bad_alloc&) {
    out.clear();
    return out_of_memory();
  } catch (const std::exception& e) {
    out.clear();
    return Status(Code::internal, e.what());
  }
}

Status ZlibCompression::decompress(std::string_view in, std::string& out) noexcept {
  try {
    if (!in.empty() && static_cast<unsigned char>(in[0]) == kFrameMagic) {
      Status s = decompress_dict(in, out);
      if (!s.ok()) {
        out.clear();  // nothing half-decoded is ever handed on
      }
      return s;
    }
    if (in.size() >= 2 && static_cast<unsigned char>(in[0]) == 0x1f && static_cast<unsigned char>(in[1]) == 0x8b) {
      Status s = decompress_gzip(in, out);
      if (!s.ok()) {
        out.clear();
      }
      return s;
    }
    if (in.size() > config_.max_entry_bytes) {
      return bad_request(
          fmt::format("uncompressed entry of {} bytes is over max_entry_bytes={}", in.size(), config_.max_entry_bytes));
    }
    out.assign(in);  // written before compression was enabled (or by compression=none)
    return {};
  } catch (const std::bad_alloc&) {
    out.clear();
    return out_of_memory();
  } catch (const std::exception& e) {
    out.clear();
    return Status(Code::internal, e.what());
  }
}

Status ZlibCompression::compress_dict(std::string_view in, std::string& out) {
  auto lease = pools_->raw_deflate.take();
  z_stream& s = *lease;
  const std::string_view dict = dictionary_v1();
  if (deflateReset(&s) != Z_OK ||
      deflateSetDictionary(&s, bytes(dict), static_cast<uInt>(dict.size())) != Z_OK) {
    return Status(Code::internal, "deflate: " + zlib_message(s, Z_STREAM_ERROR));
  }
  out.clear();
  out.push_back(static_cast<char>(kFrameMagic));
  out.push_back(static_cast<char>(kFrameVersion));
  put_varint(out, in.size());
  const std::size_t header = out.size();
  const std::size_t bound = deflateBound(&s, static_cast<uLong>(in.size()));
  out.resize(header + bound + 4);
  s.next_in = bytes(in);
  s.avail_in = static_cast<uInt>(in.size());
  s.next_out = bytes(out) + header;
  s.avail_out = static_cast<uInt>(bound);
  if (const int rc = deflate(&s, Z_FINISH); rc != Z_STREAM_END) {
    return Status(Code::internal, "deflate: " + zlib_message(s, rc));
  }
  const std::size_t end = header + s.total_out;
  const std::uint32_t crc = crc_of(in);
  for (int i = 0; i < 4; ++i) {
    out[end + static_cast<std::size_t>(i)] = static_cast<char>((crc >> (8 * i)) & 0xff);
  }
  out.resize(end + 4);
  return {};
}

Status ZlibCompression::compress_gzip(std::string_view in, std::string& out) {
  auto lease = pools_->gzip_deflate.take();
  z_stream& s = *lease;
  if (deflateReset(&s) != Z_OK) {
    return Status(Code::internal, "deflate: " + zlib_message(s, Z_STREAM_ERROR));
  }
  const std::size_t bound = deflateBound(&s, static_cast<uLong>(in.size()));
  out.resize(bound);
  s.next_in = bytes(in);
  s.avail_in = static_cast<uInt>(in.size());
  s.next_out = bytes(out);
  s.avail_out = static_cast<uInt>(bound);
  if (const int rc = deflate(&s, Z_FINISH); rc != Z_STREAM_END) {
    return Status(Code::internal, "deflate: " + zlib_message(s, rc));
  }
  out.resize(s.total_out);
  return {};
}

Status ZlibCompression::decompress_dict(std::string_view in, std::string& out) {
  std::string_view rest = in;
  if (rest.size() < 2) {
    return bad_request("compressed entry is truncated: 1 byte, no format version");
  }
  const auto version = static_cast<unsigned char>(rest[1]);
  if (version != kFrameVersion) {
    return bad_request(fmt::format("compressed entry has format version {}; this build reads version {}", version,
                                   kFrameVersion));
  }
  rest.remove_prefix(2);
  std::uint64_t length = 0;
  if (!get_varint(rest, length)) {
    return bad_request("compressed entry is truncated in its length field");
  }
  if (length > config_.max_entry_bytes) {
    return bad_request(
        fmt::format("compressed entry declares {} bytes, over max_entry_bytes={}", length, config_.max_entry_bytes));
  }
  if (rest.size() < 4 + 2) {  // the shortest DEFLATE stream is 2 bytes, then the CRC-32
    return bad_request(fmt::format("compressed entry is truncated: {} bytes in all", in.size()));
  }
  const std::string_view body = rest.substr(0, rest.size() - 4);
  const std::string_view trailer = rest.substr(rest.size() - 4);

  auto lease = pools_->raw_inflate.take();
  z_stream& s = *lease;
  const std::string_view dict = dictionary_v1();
  if (inflateReset(&s) != Z_OK || inflateSetDictionary(&s, bytes(dict), static_cast<uInt>(dict.size())) != Z_OK) {
    return Status(Code::internal, "inflate: " + zlib_message(s, Z_STREAM_ERROR));
  }
  out.resize(static_cast<std::size_t>(length));
  s.next_in = bytes(body);
  s.avail_in = static_cast<uInt>(body.size());
  s.next_out = bytes(out);  // never null, even for an empty entry
  s.avail_out = static_cast<uInt>(length);
  int rc = inflate(&s, Z_FINISH);
  if (rc == Z_BUF_ERROR && s.avail_out == 0) {
    // Out of room: one more byte tells an entry longer than declared from one cut short.
    unsigned char probe = 0;
    s.next_out = &probe;
    s.avail_out = 1;
    rc = inflate(&s, Z_FINISH);
    if (s.avail_out == 0) {
      return bad_request(fmt::format("compressed entry decodes to more than the {} bytes it declares", length));
    }
  }
  if (rc == Z_DATA_ERROR) {
    return bad_request("compressed entry is corrupt: " + zlib_message(s, rc));
  }
  if (rc == Z_MEM_ERROR) {
    return out_of_memory();
  }
  if (rc != Z_STREAM_END) {
    return bad_request(fmt::format("compressed entry is truncated: its DEFLATE data ends after {} of {} bytes",
                                   s.total_out, length));
  }
  if (s.total_out != length) {
    return bad_request(fmt::format("compressed entry decodes to {} bytes, not the {} it declares", s.total_out, length));
  }
  if (s.avail_in != 0) {
    return bad_request(fmt::format("compressed entry has {} unexpected bytes after its DEFLATE data", s.avail_in));
  }
  std::uint32_t stored = 0;
  for (int i = 0; i < 4; ++i) {
    stored |= static_cast<std::uint32_t>(static_cast<unsigned char>(trailer[static_cast<std::size_t>(i)])) << (8 * i);
  }
  if (stored != crc_of(out)) {
    return bad_request("compressed entry is corrupt: CRC-32 mismatch");
  }
  return {};
}

Status ZlibCompression::decompress_gzip(std::string_view in, std::string& out) {
  auto lease = pools_->gzip_inflate.take();
  z_stream& s = *lease;
  const std::size_t limit = config_.max_entry_bytes;
  out.clear();
  // A guess at the size (JSON text deflates 3-10x); grown by doubling, never past limit + 1.
  out.resize(std::min(limit + 1, std::max<std::size_t>(256, in.size() * 4)));
  std::string_view rest = in;
  std::size_t produced = 0;
  int members = 0;
  while (!rest.empty()) {
    if (members > 0 && (rest.size() < 2 || static_cast<unsigned char>(rest[0]) != 0x1f ||
                        static_cast<unsigned char>(rest[1]) != 0x8b)) {
      return bad_request(fmt::format("gzip entry has {} unexpected bytes after its last member", rest.size()));
    }
    if (inflateReset(&s) != Z_OK) {
      return Status(Code::internal, "inflate: " + zlib_message(s, Z_STREAM_ERROR));
    }
    s.next_in = bytes(rest);
    s.avail_in = static_cast<uInt>(rest.size());
    int rc = Z_OK;
    while (rc != Z_STREAM_END) {
      if (produced == out.size()) {
        if (out.size() > limit) {
          return bad_request(fmt::format("gzip entry decompresses to more than max_entry_bytes={}", limit));
        }
        out.resize(std::min(limit + 1, out.size() * 2));
      }
      s.next_out = bytes(out) + produced;
      s.avail_out = static_cast<uInt>(out.size() - produced);
      const uInt before = s.avail_out;
      rc = inflate(&s, Z_NO_FLUSH);
      produced += before - s.avail_out;
      if (rc == Z_DATA_ERROR) {
        return bad_request("gzip entry is corrupt: " + zlib_message(s, rc));
      }
      if (rc == Z_MEM_ERROR) {
        return out_of_memory();
      }
      if (rc == Z_NEED_DICT) {
        return bad_request("gzip entry is corrupt: it asks for a preset dictionary");
      }
      if (rc == Z_BUF_ERROR && s.avail_in == 0) {
        return bad_request(fmt::format("gzip entry is truncated after {} bytes of output", produced));
      }
      if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
        return Status(Code::internal, "inflate: " + zlib_message(s, rc));
      }
      if (produced > limit) {
        return bad_request(fmt::format("gzip entry decompresses to more than max_entry_bytes={}", limit));
      }
    }
    rest.remove_prefix(rest.size() - s.avail_in);
    ++members;
  }
  out.resize(produced);
  return {};
}

}  // namespace phasekit::compression_zlib
