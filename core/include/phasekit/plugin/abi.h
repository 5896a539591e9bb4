/* phasekit plugin ABI — the C boundary between the host and a strategy plugin.
 *
 * A plugin is a shared library that exports exactly one symbol, phasekit_plugin_entry, returning a
 * static descriptor. The host checks, in this order, before it calls anything else:
 *   abi_version == PHK_ABI_VERSION, struct_size == sizeof(phk_descriptor),
 *   build_signature equal to its own (compiler, C++ ABI, Boost version, sanitizers, NDEBUG),
 *   kind and name equal to what the file name and the configuration ask for.
 * Only then does it call create(), which hands back the kind's C++ interface (plugin/pool.hpp …)
 * through a void*. The first three fields are frozen forever; any other change to this file or to
 * the strategy headers bumps PHK_ABI_VERSION (tests/plugins/abi_lock_test.cpp enforces it).
 *
 * OWNERSHIP: the descriptor and every string it points to are static in the plugin and live as long
 * as the library is loaded (the host never unloads one). An instance returned by create() is owned by
 * the host and released with the same descriptor's destroy().
 */
#ifndef PHASEKIT_PLUGIN_ABI_H
#define PHASEKIT_PLUGIN_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PHK_ABI_VERSION 10u
#define PHK_ENTRY_SYMBOL "phasekit_plugin_entry"

#if defined(__GNUC__)
#define PHK_EXPORT __attribute__((visibility("default")))
#else
#define PHK_EXPORT
#endif

typedef enum phk_kind {
  PHK_KIND_POOL = 1,
  PHK_KIND_QUEUE = 2,
  PHK_KIND_STORE = 3,
  PHK_KIND_COMPRESSION = 4,
  PHK_KIND_AUTOSCALER = 5
} phk_kind;

typedef struct phk_descriptor {
  uint32_t abi_version;        /* frozen: PHK_ABI_VERSION the plugin was built with */
  uint32_t struct_size;        /* frozen: sizeof(phk_descriptor) at plugin build time */
  const char* build_signature; /* frozen: e.g. "gcc-12.2|cxx11abi=1|boost-1.81|asan=0|ndebug=1" */
  uint32_t kind;               /* a phk_kind value */
  const char* name;            /* "warm", "redis", "zlib", "hpa": equals <name> of libphasekit_<kind>_<name>.so */
  const char* version;         /* the plugin's own version, shown by `phasekit plugins` */
  const char* summary;         /* one line for `phasekit plugins` */
  /* host_services: a phasekit::plugin::HostServices* that outlives the instance.
   * config_json: the plugin's own settings as a JSON object (not NUL-terminated; config_len bytes).
   * Returns 0 and sets *out to the kind's C++ interface, or non-zero with a one-line reason
   * (NUL-terminated, at most err_cap bytes) in err. Never throws. */
  int (*create)(void* host_services, const char* config_json, size_t config_len, void** out, char* err,
                size_t err_cap);
  void (*destroy)(void* instance);
} phk_descriptor;

typedef const phk_descriptor* (*phk_entry_fn)(void);

#ifdef __cplusplus
}
#endif

#endif /* PHASEKIT_PLUGIN_ABI_H */
