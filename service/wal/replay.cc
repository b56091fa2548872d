#include "service/wal/replay.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "service/log.h"
#include "service/wal/bytes.h"

namespace shoal::service::wal {
namespace {

struct segment {
  uint64_t first = 0;
  std::string name;
};

absl::StatusOr<std::vector<segment>> segments_in(file_system& fs, const std::string& dir,
                                                 uint64_t before) {
  auto listed = list_segments(fs, dir);
  if (!listed.ok()) return listed.status();
  std::vector<segment> out;
  for (auto& [first, name] : *listed) {
    if (first < before) out.push_back({first, std::move(name)});
  }
  return out;
}

// A frame header of zeros: space the file system allocated for a write that never reached the
// disk (a power loss in the middle of a group's write), whatever follows it.
bool zero_filled_header(std::string_view buf, std::size_t offset) {
  for (std::size_t i = offset; i < offset + k_frame_header_bytes && i < buf.size(); ++i) {
    if (buf[i] != 0) return false;
  }
  return true;
}

// Cuts the segment at `offset` and makes the cut durable before anything is appended after it.
absl::Status cut(file_system& fs, const std::string& path, uint64_t offset) {
  if (auto st = fs.truncate(path, offset); !st.ok()) return st;
  auto f = fs.open_append(path);
  if (!f.ok()) return f.status();
  return (*f)->sync();
}

}  // namespace

std::string segment_name(uint64_t first_revision) {
  return absl::StrFormat("wal-%016x.log", first_revision);
}

bool parse_segment_name(std::string_view name, uint64_t* first_revision) {
  return parse_hex_name(name, "wal-", ".log", first_revision);
}

absl::StatusOr<std::vector<std::pair<uint64_t, std::string>>> list_segments(
    file_system& fs, const std::string& dir) {
  auto names = fs.list(dir);
  if (!names.ok()) return names.status();
  std::vector<std::pair<uint64_t, std::string>> out;
  for (const std::string& n : *names) {
    uint64_t first = 0;
    if (parse_segment_name(n, &first)) out.emplace_back(first, n);
  }
  std::sort(out.begin(), out.end());
  return out;
}

absl::StatusOr<replay_result> replay(file_system& fs, const std::string& dir,
                                     const replay_options& o,
                                     absl::FunctionRef<absl::Status(const record_view&)> apply) {
  const uint64_t after = o.after;
  const bool truncate_damage = o.truncate_damage;
  auto segs = segments_in(fs, dir, o.before_segment);
  if (!segs.ok()) return segs.status();
  replay_result out;
  out.last_revision = after;
  std::size_t last_nonempty = 0;
  for (std::size_t i = 0; i < segs->size(); ++i) {
    auto size = fs.file_size(absl::StrCat(dir, "/", (*segs)[i].name));
    if (!size.ok()) return size.status();
    if (*size > 0) last_nonempty = i;
  }
  std::string buf;
  record_view rec;
  for (std::size_t i = 0; i < segs->size() && out.last_revision < o.up_to; ++i) {
    const segment& seg = (*segs)[i];
    const std::string path = absl::StrCat(dir, "/", seg.name);
    if (auto st = fs.read_file(path, &buf); !st.ok()) return st;
    out.bytes += buf.size();
    // The last segment that holds anything is where a crash may have torn a write.
    const bool last = i >= last_nonempty;
    std::size_t offset = 0;
    while (offset < buf.size() && out.last_revision < o.up_to) {
      std::size_t next = 0;
      const decoded d = decode(buf, offset, &rec, &next);
      std::string problem;
      if (d == decoded::ok) {
        if (rec.revision <= out.last_revision && rec.revision > after) {
          problem = absl::StrCat("revision ", rec.revision, " repeats");
        } else if (rec.revision > out.last_revision + 1) {
          problem = absl::StrCat("revisions ", out.last_revision + 1, " to ", rec.revision - 1,
                                 " are missing");
        }
      } else if (o.repair && last &&
                 (d == decoded::truncated || zero_filled_header(buf, offset) ||
                  !later_record_after(buf, offset + 1, out.last_revision))) {
        SHOAL_LOG(warn, "the log ends with a torn write; it is cut off (no reply depended on it)",
                  {{"file", path},
                   {"offset", static_cast<int64_t>(offset)},
                   {"bytes_dropped", static_cast<int64_t>(buf.size() - offset)}});
        if (auto st = cut(fs, path, offset); !st.ok()) return st;
        out.dropped_tail = true;
        break;
      } else {
        problem = d == decoded::truncated ? "the segment ends inside a record"
                                          : "a record fails its checksum";
      }
      if (!problem.empty()) {
        if (!truncate_damage) {
          return absl::DataLossError(absl::StrCat(
              "the log is damaged: ", path, " at byte ", offset, ": ", problem,
              ". Restore a backup, or start once with --wal_truncate_damaged to drop this record "
              "and everything after it (the store id then changes)"));
        }
        SHOAL_LOG(warn, "the log is damaged; cutting it as --wal_truncate_damaged asks",
                  {{"file", path}, {"offset", static_cast<int64_t>(offset)}, {"why", problem}});
        if (auto st = cut(fs, path, offset); !st.ok()) return st;
        for (std::size_t j = i + 1; j < segs->size(); ++j) {
          if (auto st = fs.remove(absl::StrCat(dir, "/", (*segs)[j].name)); !st.ok()) return st;
        }
        if (auto st = fs.sync_dir(dir); !st.ok()) return st;
        out.cut_damage = true;
        return out;
      }
      if (rec.revision > after) {
        if (auto st = apply(rec); !st.ok()) return st;
        out.last_revision = rec.revision;
        ++out.records;
      }
      offset = next;
    }
  }
  return out;
}

}  // namespace shoal::service::wal
