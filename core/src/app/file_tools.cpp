#include "file_tools.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "phasekit/app/auth.hpp"
#include "phasekit/backend/fd.hpp"
#include "phasekit/bytes.hpp"

namespace phasekit::app {
namespace {

Status errno_status(int err, std::string_view path) {
  switch (err) {
    case ENOENT: return Status(Code::not_found, fmt::format("{}: no such file or directory", path));
    case ENOTDIR: return Status(Code::not_found, fmt::format("{}: a parent is not a directory", path));
    case EXDEV:
    case ELOOP: return Status(Code::bad_request, fmt::format("{}: path leads outside the workspace", path));
    case EISDIR: return Status(Code::bad_request, fmt::format("{}: is a directory", path));
    case EACCES:
    case EPERM: return Status(Code::bad_request, fmt::format("{}: permission denied", path));
    case ENOSPC:
    case EDQUOT: return Status(Code::unavailable, fmt::format("{}: no space left", path));
    default: return Status(Code::internal, fmt::format("{}: {}", path, std::strerror(err)));
  }
}

/// Opens `path` beneath the workspace; the kernel refuses any resolution that would leave it. The
/// workspace itself is never a symlink (O_NOFOLLOW): one swapped for a link to a root-only folder would
/// have this process, often root, read and write there. The folders above it are WORKSPACE_ROOT's,
/// which only this process may write (prepare_workspace_root checks).
int open_beneath(const FileToolContext& ctx, std::string_view path, int flags, mode_t mode, int& err) {
  Fd root(::open(ctx.workspace.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!root.ok()) {
    err = errno;
    return -1;
  }
  open_how how{};
  how.flags = static_cast<std::uint64_t>(flags | O_CLOEXEC);
  how.mode = (flags & O_CREAT) != 0 ? mode : 0;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  const std::string p(path);
  const long fd = ::syscall(SYS_openat2, root.get(), p.c_str(), &how, sizeof how);
  err = fd < 0 ? errno : 0;
  return static_cast<int>(fd);
}

Status path_arg(const nlohmann::json& args, const char* key, bool required, std::string& out) {
  if (!args.is_object()) {
    return Status(Code::bad_request, "args must be an object");
  }
  const auto it = args.find(key);
  if (it == args.end()) {
    if (required) {
      return Status(Code::bad_request, fmt::format("args.{} is required", key));
    }
    out.assign(1, '.');  // not `out = "."`: GCC 12 warns falsely (-Wrestrict, PR 105329)
    return {};
  }
  // A name that is not UTF-8 comes as list_dir gives it: {"base64": "…"}.
  if (!bytes::from_json(*it, out)) {
    return Status(Code::bad_request, fmt::format("args.{} must be a string or {{\"base64\": string}}", key));
  }
  if (out == ".") {
    return {};
  }
  return check_relative_path(out);
}

}  // namespace

Status check_relative_path(std::string_view path) {
  if (path.empty()) {
    return Status(Code::bad_request, "path is empty");
  }
  if (path.size() > 4096 || path.find('\0') != std::string_view::npos) {
    return Status(Code::bad_request, "path is too long or contains NUL");
  }
  if (path.front() == '/') {
    return Status(Code::bad_request, fmt::format("{}: absolute paths are not allowed; use a path in the workspace", path));
  }
  std::string_view rest = path;
  while (!rest.empty()) {
    const auto slash = rest.find('/');
    if (rest.substr(0, slash) == "..") {
      return Status(Code::bad_request, fmt::format("{}: '..' is not allowed", path));
    }
    rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
  }
  return {};
}

Status read_file(const FileToolContext& ctx, const nlohmann::json& args, FileToolResult& out) {
  std::string path;
  if (Status s = path_arg(args, "path", true, path); !s.ok()) {
    return s;
  }
  int err = 0;
  Fd fd(open_beneath(ctx, path, O_RDONLY | O_NONBLOCK, 0, err));  // a FIFO must not block us
  if (!fd.ok()) {
    return errno_status(err, path);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return Status(Code::bad_request, fmt::format("{}: not a regular file", path));
  }
  std::string content;
  const std::size_t want = std::min<std::size_t>(static_cast<std::size_t>(st.st_size), ctx.max_output_bytes);
  content.resize(want);
  std::size_t got = 0;
  while (got < want) {
    const ssize_t n = ::read(fd.get(), content.data() + got, want - got);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      break;
    }
    got += static_cast<std::size_t>(n);
  }
  content.resize(got);
  out.truncated = static_cast<std::size_t>(st.st_size) > got;
  // encoding "binary": the content travels base64 inside the job and reaches the client as a binary
  // attachment (see Session::on_job_event).
  const bool want_binary = args.contains("encoding") && args["encoding"] == "binary";
  const bool text = !want_binary && bytes::valid_utf8(content);
  out.output = {{"path", bytes::to_json(path)},
                {"content", text ? content : bytes::base64_encode(content)},
                {"encoding", want_binary ? "binary" : text ? "utf8" : "base64"},
                {"size", st.st_size},
                {"truncated", out.truncated}};
  return {};
}

Status write_file(const FileToolContext& ctx, const nlohmann::json& args, FileToolResult& out) {
  std::string path;
  if (Status s = path_arg(args, "path", true, path); !s.ok()) {
    return s;
  }
  const auto content = args.find("content");
  if (content == args.end() || !(content->is_string() || content->is_binary())) {
    return Status(Code::bad_request, "args.content must be a string or binary data");
  }
  // Binary data (a Socket.IO attachment, e.g. a Buffer from socket.io-client) is written as it is.
  std::string data = content->is_binary()
                          ? std::string(content->get_binary().begin(), content->get_binary().end())
                          : content->get<std::string>();
  const std::string encoding = content->is_binary() ? "binary"
                               : args.contains("encoding") && args["encoding"].is_string()
                                   ? args["encoding"].get<std::string>()
                                   : "utf8";
  if (encoding == "binary") {
    // already bytes
  } else if (encoding == "base64") {
    std::string decoded;
    if (!bytes::base64_decode(data, decoded)) {
      return Status(Code::bad_request, "args.content is not valid base64");
    }
    data = std::move(decoded);
  } else if (encoding != "utf8") {
    return Status(Code::bad_request, "args.encoding must be utf8 or base64");
  }
  const bool append = args.contains("append") && args["append"].is_boolean() && args["append"].get<bool>();
  int err = 0;
  Fd fd(open_beneath(ctx, path, O_WRONLY | O_CREAT | O_NONBLOCK | (append ? O_APPEND : O_TRUNC), 0644, err));
  if (!fd.ok()) {
    return errno_status(err, path);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return Status(Code::bad_request, fmt::format("{}: not a regular file", path));
  }
  if (ctx.owner_uid >= 0) {
    (void)::fchown(fd.get(), static_cast<uid_t>(ctx.owner_uid), static_cast<gid_t>(ctx.owner_gid));
  }
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd.get(), data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return errno_status(errno, path);
    }
    done += static_cast<std::size_t>(n);
  }
  out.output = {{"path", bytes::to_json(path)}, {"bytesWritten", done}};
  return {};
}

Status list_dir(const FileToolContext& ctx, const nlohmann::json& args, FileToolResult& out) {
  std::string path;
  if (Status s = path_arg(args.is_null() ? nlohmann::json::object() : args, "path", false, path); !s.ok()) {
    return s;
  }
  int err = 0;
  const int raw = open_beneath(ctx, path, O_RDONLY | O_DIRECTORY, 0, err);
  if (raw < 0) {
    return errno_status(err, path);
  }
  DIR* dir = ::fdopendir(raw);
  if (dir == nullptr) {
    ::close(raw);
    return errno_status(errno, path);
  }
  struct Entry {
    std::string name;  // the bytes the kernel gave: sorted by them, sent byte-safe
    const char* type;
    std::int64_t size;
  };
  std::vector<Entry> entries;
  std::size_t listed = 0;
  while (const dirent* e = ::readdir(dir)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") {
      continue;
    }
    struct stat st {};
    const char* type = "other";
    std::int64_t size = 0;
    if (::fstatat(::dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
      type = S_ISREG(st.st_mode) ? "file" : S_ISDIR(st.st_mode) ? "dir" : S_ISLNK(st.st_mode) ? "symlink" : "other";
      size = st.st_size;
    }
    listed += name.size() + 32;
    if (listed > ctx.max_output_bytes) {
      out.truncated = true;
      break;
    }
    entries.push_back({std::move(name), type, size});
  }
  ::closedir(dir);
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.name < b.name; });
  nlohmann::json list = nlohmann::json::array();
  for (const Entry& e : entries) {
    list.push_back({{"name", bytes::to_json(e.name)}, {"type", e.type}, {"size", e.size}});
  }
  out.output = {{"path", bytes::to_json(path)}, {"entries", std::move(list)}, {"truncated", out.truncated}};
  return {};
}

}  // namespace phasekit::app
