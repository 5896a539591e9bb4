#include "phasekit/protocol/socketio.hpp"

#include <fmt/format.h>

#include <array>
#include <charconv>
#include <limits>

namespace phasekit::socketio {
namespace {

using json = nlohmann::json;

ParseError error(std::string message) { return ParseError{std::move(message)}; }

/// Deepest nesting of [ and { outside strings; stops early past `limit`.
std::size_t json_depth(std::string_view s, std::size_t limit) {
  std::size_t depth = 0;
  std::size_t deepest = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
      if (deepest > limit) {
        return deepest;
      }
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

bool reserved_event(std::string_view name) {
  constexpr std::array<std::string_view, 6> kReserved{"connect",       "connect_error",  "disconnect",
                                                      "disconnecting", "newListener", "removeListener"};
  for (const auto r : kReserved) {
    if (r == name) {
      return true;
    }
  }
  return false;
}

/// What socket.io-parser's isPayloadValid accepts for each type.
bool payload_valid(const Packet& p) {
  switch (p.type) {
    case PacketType::connect: return !p.has_data() || p.data.is_object();
    case PacketType::disconnect: return !p.has_data();
    case PacketType::connect_error: return p.has_data() && (p.data.is_object() || p.data.is_string());
    case PacketType::event:
    case PacketType::binary_event:
      return p.has_data() && p.data.is_array() && !p.data.empty() &&
             (p.data[0].is_number() || (p.data[0].is_string() && !reserved_event(p.data[0].get_ref<const std::string&>())));
    case PacketType::ack:
    case PacketType::binary_ack: return p.has_data() && p.data.is_array();
  }
  return false;
}

void extract_binary(json& node, std::vector<std::string>& attachments) {
  if (node.is_binary()) {
    const auto& bytes = node.get_binary();
    std::string data(bytes.begin(), bytes.end());
    node = json{{"_placeholder", true}, {"num", attachments.size()}};
    attachments.push_back(std::move(data));
  } else if (node.is_array() || node.is_object()) {
    for (auto& child : node) {
      extract_binary(child, attachments);
    }
  }
}

bool is_placeholder(const json& node) {
  // As socket.io-parser: any object whose _placeholder is true stands for an attachment.
  if (!node.is_object()) {
    return false;
  }
  const auto it = node.find("_placeholder");
  return it != node.end() && it->is_boolean() && it->get<bool>();
}

/// Checks the placeholders of a binary packet against its attachment count before any attachment
/// is buffered: each one names a distinct attachment in [0, attachments), and every attachment is
/// named once. So reassembly moves each attachment into place once, and no packet can multiply
/// one attachment into many copies.
std::optional<ParseError> check_placeholders(const json& node, std::size_t attachments, std::vector<bool>& seen) {
  if (is_placeholder(node)) {
    const auto num = node.find("num");
    if (num == node.end() || !num->is_number_unsigned() || num->get<std::uint64_t>() >= attachments) {
      return error("placeholder refers to a missing attachment");
    }
    const auto index = num->get<std::size_t>();
    if (seen[index]) {
      return error("attachment referenced by more than one placeholder");
    }
    seen[index] = true;
    return std::nullopt;
  }
  if (node.is_array() || node.is_object()) {
    for (const auto& child : node) {
      if (auto e = check_placeholders(child, attachments, seen)) {
        return e;
      }
    }
  }
  return std::nullopt;
}

std::optional<ParseError> check_placeholders(const Packet& p) {
  std::vector<bool> seen(p.attachments, false);
  if (p.has_data()) {
    if (auto e = check_placeholders(p.data, p.attachments, seen)) {
      return e;
    }
  }
  for (const bool used : seen) {
    if (!used) {
      return error("attachment without a placeholder");
    }
  }
  return std::nullopt;
}

/// Puts each attachment in place of its placeholder, moving it (check_placeholders guarantees
/// that each is used exactly once).
void restore_binary(json& node, std::vector<std::string>& buffers) {
  if (is_placeholder(node)) {
    std::string& b = buffers[node["num"].get<std::size_t>()];
    json::binary_t::container_type bytes(b.begin(), b.end());
    std::string().swap(b);
    node = json::binary(std::move(bytes));
    return;
  }
  if (node.is_array() || node.is_object()) {
    for (auto& child : node) {
      restore_binary(child, buffers);
    }
  }
}

}  // namespace

Packet Packet::connect_ok(std::string nsp, std::string_view sid, std::string_view pid) {
  json data{{"sid", sid}};
  if (!pid.empty()) {
    data["pid"] = pid;
  }
  return Packet{PacketType::connect, std::move(nsp), std::nullopt, std::move(data), 0};
}
Packet Packet::connect_error(std::string nsp, std::string_view message) {
  return Packet{PacketType::connect_error, std::move(nsp), std::nullopt, json{{"message", message}}, 0};
}
Packet Packet::disconnect(std::string nsp) {
  return Packet{PacketType::disconnect, std::move(nsp), std::nullopt, json(json::value_t::discarded), 0};
}
Packet Packet::event(std::string nsp, json args, std::optional<std::uint64_t> id) {
  return Packet{PacketType::event, std::move(nsp), id, std::move(args), 0};
}
Packet Packet::ack(std::string nsp, std::uint64_t id, json args) {
  return Packet{PacketType::ack, std::move(nsp), id, std::move(args), 0};
}

std::vector<Part> encode(const Packet& packet) {
  std::vector<Part> parts(1);
  std::vector<std::string> attachments;
  json data = packet.data;
  PacketType type = packet.type;
  if (packet.has_data()) {
    extract_binary(data, attachments);
  }
  if (!attachments.empty()) {
    type = type == PacketType::ack ? PacketType::binary_ack : type == PacketType::event ? PacketType::binary_event : type;
  }
  std::string& text = parts[0].data;
  text += static_cast<char>('0' + static_cast<int>(type));
  if (type == PacketType::binary_event || type == PacketType::binary_ack) {
    text += fmt::format("{}-", attachments.size());
  }
  if (packet.nsp != "/" && !packet.nsp.empty()) {
    text += packet.nsp;
    text += ',';
  }
  if (packet.id) {
    text += std::to_string(*packet.id);
  }
  if (packet.has_data()) {
    text += data.dump(-1, ' ', false, json::error_handler_t::replace);
  }
  for (auto& a : attachments) {
    parts.push_back(Part{std::move(a), true});
  }
  return parts;
}

Result<Packet> parse_text(std::string_view text, const Limits& limits) {
  if (text.empty()) {
    return error("empty packet");
  }
  Packet p;
  p.data = json(json::value_t::discarded);
  const char t = text[0];
  if (t < '0' || t > '6') {
    return error("unknown packet type");
  }
  p.type = static_cast<PacketType>(t - '0');
  std::size_t i = 1;
  if (p.type == PacketType::binary_event || p.type == PacketType::binary_ack) {
    const auto dash = text.find('-', i);
    if (dash == std::string_view::npos || dash == i) {
      return error("binary packet without an attachment count");
    }
    std::size_t n = 0;
    const auto [end, ec] = std::from_chars(text.data() + i, text.data() + dash, n);
    if (ec != std::errc() || end != text.data() + dash) {
      return error("bad attachment count");
    }
    if (n > limits.max_attachments) {
      return error(fmt::format("{} attachments, at most {} allowed", n, limits.max_attachments));
    }
    p.attachments = n;
    i = dash + 1;
  }
  if (i < text.size() && text[i] == '/') {
    const auto comma = text.find(',', i);
    const std::size_t end = comma == std::string_view::npos ? text.size() : comma;
    p.nsp = std::string(text.substr(i, end - i));
    i = comma == std::string_view::npos ? text.size() : comma + 1;
  }
  const std::size_t id_start = i;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
    ++i;
  }
  if (i > id_start) {
    std::uint64_t id = 0;
    const auto [end, ec] = std::from_chars(text.data() + id_start, text.data() + i, id);
    if (ec != std::errc()) {
      return error("ack id out of range");
    }
    p.id = id;
  }
  if (i < text.size()) {
    const std::string_view body = text.substr(i);
    if (json_depth(body, limits.max_depth) > limits.max_depth) {
      return error(fmt::format("JSON nested deeper than {}", limits.max_depth));
    }
    p.data = json::parse(body, nullptr, false);
    if (p.data.is_discarded()) {
      return error("invalid JSON");
    }
  }
  if (!payload_valid(p)) {
    return error("invalid payload for the packet type");
  }
  return p;
}

Result<std::vector<Packet>> Decoder::feed(std::string_view text) {
  if (pending_) {
    return error("text packet while binary attachments were expected");
  }
  auto p = parse_text(text, limits_);
  if (!p) {
    return p.error();
  }
  std::vector<Packet> out;
  if (p->type == PacketType::binary_event || p->type == PacketType::binary_ack) {
    if (auto e = check_placeholders(*p)) {
      return *e;
    }
    if (p->attachments > 0) {
      pending_ = std::make_unique<Packet>(std::move(*p));
      buffers_.clear();
      buffered_bytes_ = 0;
      return out;
    }
  }
  out.push_back(std::move(*p));
  return out;
}

Result<std::vector<Packet>> Decoder::feed_binary(std::string bytes) {
  if (!pending_) {
    return error("binary data without a binary packet");
  }
  buffered_bytes_ += bytes.size();
  if (buffered_bytes_ > limits_.max_binary_bytes) {
    reset();
    return error("attachments too large");
  }
  buffers_.push_back(std::move(bytes));
  std::vector<Packet> out;
  if (buffers_.size() < pending_->attachments) {
    return out;
  }
  Packet p = std::move(*pending_);
  restore_binary(p.data, buffers_);
  reset();
  out.push_back(std::move(p));
  return out;
}

void Decoder::reset() noexcept {
  pending_.reset();
  std::vector<std::string>().swap(buffers_);
  buffered_bytes_ = 0;
}

}  // namespace phasekit::socketio
