#include "phasekit/plugin_host/loader.hpp"

#include <dlfcn.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "phasekit/plugin/build_signature.hpp"
#include "builtins.hpp"

namespace phasekit::plugin_host {
namespace {

constexpr std::array<std::string_view, 6> kKindNames{"unknown", "pool", "queue", "store", "compression", "autoscaler"};
constexpr std::string_view kBuiltinPath = "(built-in)";

std::string prefix(std::string_view kind, std::string_view name, std::string_view path) {
  return fmt::format("plugin {}={} ({})", kind, name, path);
}

std::string file_name_for(phk_kind kind, std::string_view name) {
  return fmt::format("libphasekit_{}_{}.so", kind_name(kind), name);
}

std::shared_ptr<Library> open_library(const std::string& path, std::string_view kind, std::string_view name) {
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = ::dlerror();
    throw LoadError(Stage::dlopen, path,
                    fmt::format("{}: cannot load: {}", prefix(kind, name, path), why != nullptr ? why : "unknown error"));
  }
  return std::make_shared<Library>(path, handle);
}

const phk_descriptor* entry_descriptor(const Library& library, std::string_view kind, std::string_view name) {
  void* symbol = library.symbol(PHK_ENTRY_SYMBOL);
  if (symbol == nullptr) {
    throw LoadError(Stage::no_entry, library.path(),
                    fmt::format("{}: does not export {}; it is not a phasekit plugin",
                                prefix(kind, name, library.path()), PHK_ENTRY_SYMBOL));
  }
  const auto entry = reinterpret_cast<phk_entry_fn>(symbol);
  const phk_descriptor* d = entry();
  if (d == nullptr) {
    throw LoadError(Stage::no_entry, library.path(),
                    fmt::format("{}: {} returned no descriptor", prefix(kind, name, library.path()), PHK_ENTRY_SYMBOL));
  }
  return d;
}

}  // namespace

std::string_view stage_name(Stage stage) noexcept {
  switch (stage) {
    case Stage::not_found: return "not_found";
    case Stage::dlopen: return "dlopen";
    case Stage::no_entry: return "no_entry";
    case Stage::abi_version: return "abi_version";
    case Stage::struct_size: return "struct_size";
    case Stage::build_signature: return "build_signature";
    case Stage::kind_mismatch: return "kind_mismatch";
    case Stage::name_mismatch: return "name_mismatch";
    case Stage::create_failed: return "create_failed";
  }
  return "unknown";
}

std::string_view kind_name(std::uint32_t kind) noexcept {
  return kind < kKindNames.size() ? kKindNames[kind] : kKindNames[0];
}

std::optional<phk_kind> kind_from_name(std::string_view name) noexcept {
  for (std::uint32_t k = 1; k < kKindNames.size(); ++k) {
    if (kKindNames[k] == name) {
      return static_cast<phk_kind>(k);
    }
  }
  return std::nullopt;
}

std::string_view host_build_signature() noexcept { return PHK_BUILD_SIGNATURE; }

void* Library::symbol(const char* name) const noexcept {
  ::dlerror();
  return ::dlsym(handle_, name);
}

std::optional<std::pair<std::string, std::string>> parse_file_name(std::string_view file_name) {
  constexpr std::string_view kPrefix = "libphasekit_";
  constexpr std::string_view kSuffix = ".so";
  if (!file_name.starts_with(kPrefix) || !file_name.ends_with(kSuffix)) {
    return std::nullopt;
  }
  std::string_view stem = file_name.substr(kPrefix.size(), file_name.size() - kPrefix.size() - kSuffix.size());
  const auto underscore = stem.find('_');
  if (underscore == std::string_view::npos || underscore == 0 || underscore + 1 == stem.size()) {
    return std::nullopt;
  }
  return std::make_pair(std::string(stem.substr(0, underscore)), std::string(stem.substr(underscore + 1)));
}

void check_descriptor(const phk_descriptor& d, const std::string& path, phk_kind kind, std::string_view name) {
  const std::string where = prefix(kind_name(kind), name, path);
  if (d.abi_version != PHK_ABI_VERSION) {
    throw LoadError(Stage::abi_version, path,
                    fmt::format("{}: ABI version {}, host expects {}; rebuild the plugin", where, d.abi_version,
                                PHK_ABI_VERSION));
  }
  if (d.struct_size != sizeof(phk_descriptor)) {
    throw LoadError(Stage::struct_size, path,
                    fmt::format("{}: descriptor of {} bytes, host expects {}; rebuild the plugin", where,
                                d.struct_size, sizeof(phk_descriptor)));
  }
  const std::string_view signature = d.build_signature != nullptr ? d.build_signature : "";
  if (signature != host_build_signature()) {
    throw LoadError(Stage::build_signature, path,
                    fmt::format("{}: built as \"{}\", host is \"{}\"; rebuild the plugin with the host's compiler "
                                "and flags",
                                where, signature, host_build_signature()));
  }
  if (d.kind != static_cast<std::uint32_t>(kind)) {
    throw LoadError(Stage::kind_mismatch, path,
                    fmt::format("{}: is a {} plugin, expected {}", where, kind_name(d.kind), kind_name(kind)));
  }
  const std::string_view own_name = d.name != nullptr ? d.name : "";
  if (own_name != name) {
    throw LoadError(Stage::name_mismatch, path,
                    fmt::format("{}: calls itself \"{}\"; the file name and the descriptor must agree", where,
                                own_name));
  }
  if (d.create == nullptr || d.destroy == nullptr) {
    throw LoadError(Stage::no_entry, path, fmt::format("{}: descriptor has no create or destroy function", where));
  }
}

Loader::Loader(std::vector<std::string> search_path) : search_path_(std::move(search_path)) {}

std::vector<std::string> Loader::search_path_from(std::string_view text) {
  std::vector<std::string> out;
  while (!text.empty()) {
    const auto colon = text.find(':');
    const std::string_view part = text.substr(0, colon);
    if (!part.empty()) {
      out.emplace_back(part);
    }
    text = colon == std::string_view::npos ? std::string_view() : text.substr(colon + 1);
  }
  if (out.empty()) {
    std::error_code ec;
    const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (!ec) {
      out.push_back((exe.parent_path().parent_path() / "lib" / "phasekit").lexically_normal().string());
    }
  }
  return out;
}

Candidate Loader::find(phk_kind kind, std::string_view name) const {
  for (const Builtin& b : builtins()) {
    if (b.kind == kind && b.name == name) {
      Candidate c;
      c.descriptor = b.entry();
      c.path = std::string(kBuiltinPath);
      check_descriptor(*c.descriptor, c.path, kind, name);
      return c;
    }
  }
  const std::string file = file_name_for(kind, name);
  for (const std::string& dir : search_path_) {
    const std::string path = (std::filesystem::path(dir) / file).string();
    std::error_code ec;
    if (std::filesystem::exists(path, ec)) {
      return open_file(path, kind, name);
    }
  }
  std::string folders;
  for (const std::string& dir : search_path_) {
    folders += folders.empty() ? dir : ":" + dir;
  }
  throw LoadError(Stage::not_found, file,
                  fmt::format("plugin {}={}: not found: no {} in {} (set PHASEKIT_PLUGIN_PATH)", kind_name(kind), name,
                              file, folders.empty() ? "(empty search path)" : folders));
}

Candidate Loader::open_file(const std::string& path, phk_kind kind, std::string_view name) {
  Candidate c;
  c.library = open_library(path, kind_name(kind), name);
  c.descriptor = entry_descriptor(*c.library, kind_name(kind), name);
  c.path = path;
  check_descriptor(*c.descriptor, path, kind, name);
  return c;
}

std::vector<ProbeReport> Loader::probe_all() const {
  std::vector<ProbeReport> out;
  for (const Builtin& b : builtins()) {
    const phk_descriptor* d = b.entry();
    ProbeReport report;
    report.path = kBuiltinPath;
    report.kind = kind_name(d->kind);
    report.name = d->name;
    report.abi_version = d->abi_version;
    report.version = d->version;
    report.summary = d->summary;
    out.push_back(std::move(report));
  }
  for (const std::string& dir : search_path_) {
    std::error_code ec;
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
      const std::string file = entry.path().filename().string();
      if (file.starts_with("libphasekit_") && file.ends_with(".so")) {
        files.push_back(entry.path());
      }
    }
    if (ec) {
      ProbeReport r;
      r.path = dir;
      r.warning = fmt::format("cannot read folder: {}", ec.message());
      out.push_back(std::move(r));
      continue;
    }
    std::sort(files.begin(), files.end());
    for (const auto& file : files) {
      ProbeReport r;
      r.path = file.string();
      const auto parsed = parse_file_name(file.filename().string());
      const auto kind = parsed ? kind_from_name(parsed->first) : std::nullopt;
      if (!parsed || !kind) {
        r.error = "file name is not libphasekit_<kind>_<name>.so with kind pool|queue|store|compression|autoscaler";
        out.push_back(std::move(r));
        continue;
      }
      r.kind = parsed->first;
      r.name = parsed->second;
      try {
        const auto library = open_library(r.path, r.kind, r.name);
        const phk_descriptor* d = entry_descriptor(*library, r.kind, r.name);
        r.abi_version = d->abi_version;  // frozen field: readable whatever the version
        if (d->abi_version == PHK_ABI_VERSION && d->struct_size == sizeof(phk_descriptor)) {
          r.version = d->version != nullptr ? d->version : "";
          r.summary = d->summary != nullptr ? d->summary : "";
        }
        check_descriptor(*d, r.path, *kind, r.name);
      } catch (const LoadError& e) {
        r.error = e.what();
      }
      out.push_back(std::move(r));
    }
  }
  return out;
}

void* create_instance(const Candidate& candidate, void* host_services, std::string_view config_json) {
  const phk_descriptor& d = *candidate.descriptor;
  std::array<char, 1024> err{};
  void* instance = nullptr;
  const int rc = d.create(host_services, config_json.data(), config_json.size(), &instance, err.data(), err.size());
  const std::string where = prefix(kind_name(d.kind), d.name, candidate.path);
  if (rc != 0) {
    err.back() = '\0';
    throw LoadError(Stage::create_failed, candidate.path,
                    fmt::format("{}: refused its configuration: {}", where, err[0] != '\0' ? err.data() : "no reason given"));
  }
  if (instance == nullptr) {
    throw LoadError(Stage::create_failed, candidate.path, fmt::format("{}: create returned no instance", where));
  }
  return instance;
}

}  // namespace phasekit::plugin_host
