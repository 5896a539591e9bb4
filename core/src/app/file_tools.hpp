#pragma once
// read_file, write_file and list_dir on a session's workspace. Every path is relative to the
// workspace and resolved by the kernel beneath it (openat2 RESOLVE_BENEATH): `..`, absolute paths
// and symlinks that lead out are refused with BAD_REQUEST, with no window for a race.
#include <nlohmann/json.hpp>

#include <cstddef>
#include <string>

#include "phasekit/status.hpp"

namespace phasekit::app {

struct FileToolContext {
  std::string workspace;    // absolute path of the workspace folder
  int owner_uid = -1;       // new files are given to the backend's user (when the host runs as root)
  int owner_gid = -1;
  std::size_t max_output_bytes = 1 << 20;
};

struct FileToolResult {
  nlohmann::json output;  // the tool's result object
  bool truncated = false;
};

/// args: {path, [encoding: "binary"]}; result {path, content, encoding: "utf8"|"base64"|"binary", size,
/// truncated}. With "binary" the content is base64 here and becomes a binary attachment on the wire.
/// A `path`, given or answered, is byte-safe (phasekit/bytes.hpp): a string, or {"base64": …} for a name
/// that is not UTF-8.
Status read_file(const FileToolContext& ctx, const nlohmann::json& args, FileToolResult& out);
/// args: {path, content (text, or binary data), [append], [encoding: utf8|base64]}; result {path, bytesWritten}.
Status write_file(const FileToolContext& ctx, const nlohmann::json& args, FileToolResult& out);
/// args: {[path]}; result {path, entries: [{name, type, size}]}, sorted by the names' bytes; a name
/// that is not UTF-8 is {"base64": …}.
Status list_dir(const FileToolContext& ctx, const nlohmann::json& args, FileToolResult& out);

/// BAD_REQUEST unless `path` is relative, non-empty, without NUL or `..` components.
Status check_relative_path(std::string_view path);

}  // namespace phasekit::app
