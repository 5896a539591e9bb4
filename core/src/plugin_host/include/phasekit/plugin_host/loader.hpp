#pragma once
// Finds, checks and instantiates plugins. A plugin is either built in (linked into the binary,
// found by kind and name) or a file libphasekit_<kind>_<name>.so on the search path; both go
// through the same descriptor checks. Loading errors are exceptions: they only happen at start-up,
// and main turns them into one line and exit code 3.
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "phasekit/plugin/abi.h"

namespace phasekit::plugin_host {

enum class Stage {
  not_found,
  dlopen,
  no_entry,
  abi_version,
  struct_size,
  build_signature,
  kind_mismatch,
  name_mismatch,
  create_failed,
};

std::string_view stage_name(Stage stage) noexcept;
/// "pool", "queue", … ; "unknown" for a value outside phk_kind.
std::string_view kind_name(std::uint32_t kind) noexcept;
std::optional<phk_kind> kind_from_name(std::string_view name) noexcept;

class LoadError : public std::runtime_error {
 public:
  LoadError(Stage stage, std::string path, const std::string& message)
      : std::runtime_error(message), stage_(stage), path_(std::move(path)) {}
  [[nodiscard]] Stage stage() const noexcept { return stage_; }
  [[nodiscard]] const std::string& path() const noexcept { return path_; }

 private:
  Stage stage_;
  std::string path_;
};

/// A dlopen'd library. Never dlclose'd: plugin code may have left vtables or Asio services behind
/// in the host (docs/development.md, "Habits the code comments point to"), so the handle is kept
/// until the process exits.
class Library {
 public:
  Library(std::string path, void* handle) : path_(std::move(path)), handle_(handle) {}
  [[nodiscard]] const std::string& path() const noexcept { return path_; }
  [[nodiscard]] void* symbol(const char* name) const noexcept;

 private:
  std::string path_;
  void* handle_;
};

/// A checked descriptor and the library that holds it (null for built-ins).
struct Candidate {
  const phk_descriptor* descriptor = nullptr;
  std::shared_ptr<Library> library;
  std::string path;  // "(built-in)" for built-ins
};

/// What `phasekit plugins` shows for one file.
struct ProbeReport {
  std::string path;
  std::string kind;     // from the file name when the descriptor could not be read
  std::string name;
  std::optional<std::uint32_t> abi_version;
  std::string version;
  std::string summary;
  std::string error;    // empty: loads fine
  std::string warning;  // e.g. a folder of the path that does not exist (not a load failure)
};

/// The host's build signature (the same macro every plugin is built with).
std::string_view host_build_signature() noexcept;

class Loader {
 public:
  /// search_path: folders tried in order.
  explicit Loader(std::vector<std::string> search_path);

  /// The search path from PHASEKIT_PLUGIN_PATH-style text ("a:b"), or <exe>/../lib/phasekit when empty.
  static std::vector<std::string> search_path_from(std::string_view text);

  /// Finds kind/name (built-in first, then the search path) and checks its descriptor.
  Candidate find(phk_kind kind, std::string_view name) const;
  /// Opens one file and checks its descriptor against the kind and name its file name carries.
  static Candidate open_file(const std::string& path, phk_kind kind, std::string_view name);
  /// Every libphasekit_*.so on the search path, with the reason any of them cannot load.
  [[nodiscard]] std::vector<ProbeReport> probe_all() const;

  [[nodiscard]] const std::vector<std::string>& search_path() const noexcept { return search_path_; }

 private:
  std::vector<std::string> search_path_;
};

/// Checks a descriptor: ABI version, size, build signature, kind, name. Throws LoadError.
void check_descriptor(const phk_descriptor& d, const std::string& path, phk_kind kind, std::string_view name);

/// Calls create() and returns the instance pointer (an Interface* as void*). Throws LoadError.
void* create_instance(const Candidate& candidate, void* host_services, std::string_view config_json);

/// Splits "libphasekit_<kind>_<name>.so" into kind and name; nullopt for other file names.
std::optional<std::pair<std::string, std::string>> parse_file_name(std::string_view file_name);

}  // namespace phasekit::plugin_host
