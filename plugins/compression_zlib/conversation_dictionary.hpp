#pragma once
// The preset DEFLATE dictionaries of the deflate_dict format, one per frame version. A version's
// dictionary never changes once released (entries written with it must stay readable): a new
// dictionary is a new version, and the old one stays here for reading.
#include <string_view>

namespace phasekit::compression_zlib {

/// Version 1: what a conversation entry is made of, as Session::append_conversation writes it
/// (nlohmann::json dump, keys sorted, strings JSON-escaped), plus common words of shell sessions.
/// DEFLATE reaches back at most 32 KiB and codes near distances in fewer bits, so the most frequent
/// strings (the entry skeletons) come last.
std::string_view dictionary_v1() noexcept;

}  // namespace phasekit::compression_zlib
