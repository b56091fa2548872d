// shoalctl: Shoal from the shell, on the C++ client library.
//
//   shoalctl [--addr=HOST:PORT] [--json] COMMAND [ARGS] [FLAGS]     (shoalctl --help lists them)
//
// Exit codes, so that scripts can tell outcomes apart: see k_exit_codes below (and --help).
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "clients/cli/args.h"
#include "clients/cli/output.h"
#include "clients/cli/snapshot.h"
#include "clients/cpp/channel.h"
#include "clients/cpp/client.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"

namespace shoal::cli {
namespace {

namespace sc = shoal::client;

enum exit_code : int {
  k_ok = 0,
  k_error = 1,                // any other failure
  k_usage = 2,                // bad command line
  k_not_found = 3,            // get / del of a key that does not exist
  k_not_applied = 4,          // a condition did not hold
  k_invalid_argument = 5,     // the server refused the input
  k_failed_precondition = 6,  // read-only server, value not an integer
  k_resource_exhausted = 7,   // a server limit
  k_out_of_range = 8,         // compacted watch, increment overflow
  k_unavailable = 9,          // server down, unreachable or draining
  k_deadline = 10,            // no answer in time
  k_unauthenticated = 11,     // no credentials, or wrong ones
  k_permission_denied = 12,   // the credentials do not allow it
};

constexpr const char* k_exit_codes =
    "exit codes: 0 ok, 1 other error, 2 usage, 3 not found, 4 condition not met,\n"
    "  5 invalid argument, 6 failed precondition, 7 resource exhausted, 8 out of range,\n"
    "  9 unavailable, 10 deadline exceeded, 11 unauthenticated, 12 permission denied\n";

struct global {
  std::string addr;
  bool json = false;
  int64_t timeout_ms = 5000;
  encoding values = encoding::escaped;  // how get, range and watch print values
};

int fail(const global& g, const absl::Status& s) {
  std::string what(s.message());
  if (s.code() == absl::StatusCode::kUnavailable) {
    what = absl::StrCat("cannot reach shoald at ", g.addr.empty() ? "the default address" : g.addr,
                        " (is it running? set --addr or SHOAL_ADDR): ", s.message());
  }
  std::fprintf(stderr, "shoalctl: %s: %s\n", absl::StatusCodeToString(s.code()).c_str(),
               what.c_str());
  switch (s.code()) {
    case absl::StatusCode::kInvalidArgument:
      return k_invalid_argument;
    case absl::StatusCode::kFailedPrecondition:
      return k_failed_precondition;
    case absl::StatusCode::kResourceExhausted:
      return k_resource_exhausted;
    case absl::StatusCode::kOutOfRange:
      return k_out_of_range;
    case absl::StatusCode::kUnavailable:
      return k_unavailable;
    case absl::StatusCode::kDeadlineExceeded:
      return k_deadline;
    case absl::StatusCode::kNotFound:
      return k_not_found;
    case absl::StatusCode::kUnauthenticated:
      return k_unauthenticated;
    case absl::StatusCode::kPermissionDenied:
      return k_permission_denied;
    default:
      return k_error;
  }
}

int usage_error(const std::string& msg) {
  std::fprintf(stderr, "shoalctl: %s (see --help)\n", msg.c_str());
  return k_usage;
}

// A value argument: text, @file for a file's bytes, - for standard input.
absl::StatusOr<std::string> read_value(const std::string& arg) {
  if (arg == "-") {
    return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  if (!arg.empty() && arg[0] == '@') {
    std::ifstream in(arg.substr(1), std::ios::binary);
    if (!in) return absl::InvalidArgumentError(absl::StrCat("cannot read ", arg.substr(1)));
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  return arg;
}

void print_entry(const global& g, const v1::Entry& e, bool with_key) {
  if (g.json) {
    std::printf("%s\n", to_json(e).c_str());
  } else if (with_key) {
    const std::string value = encode(e.value(), g.values);
    std::printf("%s\t", display(e.key()).c_str());
    std::fwrite(value.data(), 1, value.size(), stdout);
    std::printf("\n");
  } else {
    // One value alone: raw, it is exactly the bytes (`get k > file`); encoded, a line.
    const std::string value = encode(e.value(), g.values);
    std::fwrite(value.data(), 1, value.size(), stdout);
    if (g.values != encoding::raw) std::printf("\n");
  }
}

// The value encoding flags, offered by get, range and watch.
const std::vector<flag_spec> k_encoding_flags = {
    {"raw", false, "print values as their bytes (get's default when stdout is not a terminal)"},
    {"escaped", false,
     "print values as text, C-escaping what is not printable UTF-8 (the default on a terminal)"},
    {"base64", false, "print values in base64"},
    {"hex", false, "print values in hex"},
};

// The one encoding flag given, or `fallback`; more than one is a usage error.
absl::StatusOr<encoding> chosen_encoding(const parsed_args& a, encoding fallback) {
  static const std::pair<const char*, encoding> k_flags[] = {{"raw", encoding::raw},
                                                             {"escaped", encoding::escaped},
                                                             {"base64", encoding::base64},
                                                             {"hex", encoding::hex}};
  int given = 0;
  encoding chosen = fallback;
  for (const auto& [name, e] : k_flags) {
    if (a.has(name)) {
      ++given;
      chosen = e;
    }
  }
  if (given > 1) return absl::InvalidArgumentError("give one of --raw, --escaped, --base64, --hex");
  return chosen;
}

// Ctrl-C (or SIGTERM) ends a streaming command cleanly: a thread waits for the signal and
// cancels the stream, so the command prints what it has and exits 0.
void on_interrupt(std::function<void()> stop) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  std::thread([set, stop = std::move(stop)] {
    int sig = 0;
    sigwait(&set, &sig);
    stop();
  }).detach();
}

struct command {
  std::string name;
  std::string synopsis;
  std::string summary;  // one sentence, for the overview
  std::string help;     // more, for COMMAND --help (empty: the summary says it all)
  std::vector<flag_spec> flags;
  int min_args, max_args;
  std::function<int(const global&, sc::client&, const parsed_args&)> run;
};

int cmd_get(const global& g, sc::client& c, const parsed_args& a) {
  auto r = c.get(a.positional[0], {.serializable = a.has("serializable")});
  if (!r.ok()) return fail(g, r.status());
  if (!r->has_value()) {
    if (g.json)
      std::printf("{\"found\":false}\n");
    else
      std::fprintf(stderr, "shoalctl: %s: not found\n", display(a.positional[0]).c_str());
    return k_not_found;
  }
  print_entry(g, **r, false);
  return k_ok;
}

int cmd_put(const global& g, sc::client& c, const parsed_args& a) {
  auto value = read_value(a.positional[1]);
  if (!value.ok()) return usage_error(std::string(value.status().message()));
  sc::put_options o;
  auto ttl = a.integer("ttl");
  auto rev = a.integer("if-revision");
  if (!ttl.ok()) return usage_error(std::string(ttl.status().message()));
  if (!rev.ok()) return usage_error(std::string(rev.status().message()));
  o.ttl_ms = *ttl;
  if (*rev) o.if_revision = static_cast<uint64_t>(**rev);
  o.if_absent = a.has("if-absent");
  o.if_present = a.has("if-present");
  o.keep_ttl = a.has("keep-ttl");
  auto r = c.put(a.positional[0], *value, o);
  if (!r.ok()) return fail(g, r.status());
  if (g.json) {
    std::printf("{\"applied\":%s,\"revision\":\"%llu\",\"entry\":%s}\n",
                r->applied ? "true" : "false", static_cast<unsigned long long>(r->revision),
                to_json(r->entry).c_str());
  } else if (r->applied) {
    std::printf("OK revision %llu\n", static_cast<unsigned long long>(r->revision));
  } else {
    std::printf("not applied: the condition did not hold (key %s, mod_revision %llu)\n",
                r->entry.key().empty() ? "absent" : "present",
                static_cast<unsigned long long>(r->entry.mod_revision()));
  }
  return r->applied ? k_ok : k_not_applied;
}

int cmd_del(const global& g, sc::client& c, const parsed_args& a) {
  const std::string& key = a.positional[0];
  if (a.has("prefix")) {
    if (key.empty() && !a.has("all")) {
      return usage_error("an empty prefix deletes every key: add --all to mean it");
    }
    auto n = c.remove_prefix(key, a.has("all"));
    if (!n.ok()) return fail(g, n.status());
    if (g.json)
      std::printf("{\"deleted\":\"%llu\"}\n", static_cast<unsigned long long>(*n));
    else
      std::printf("deleted %llu\n", static_cast<unsigned long long>(*n));
    return k_ok;
  }
  auto rev = a.integer("if-revision");
  if (!rev.ok()) return usage_error(std::string(rev.status().message()));
  sc::delete_options o;
  if (*rev) o.if_revision = static_cast<uint64_t>(**rev);
  auto r = c.remove(key, o);
  if (!r.ok()) return fail(g, r.status());
  if (g.json) {
    std::printf("{\"applied\":%s,\"deleted\":\"%llu\",\"revision\":\"%llu\"}\n",
                r->applied ? "true" : "false", static_cast<unsigned long long>(r->deleted),
                static_cast<unsigned long long>(r->revision));
  } else if (r->applied) {
    std::printf("deleted %llu\n", static_cast<unsigned long long>(r->deleted));
  } else {
    std::printf("not applied: the condition did not hold\n");
  }
  if (!r->applied) return k_not_applied;
  return r->deleted == 0 ? k_not_found : k_ok;
}

int cmd_incr(const global& g, sc::client& c, const parsed_args& a) {
  int64_t delta = 1;
  if (a.positional.size() > 1) {
    auto d = parse({"--by=" + a.positional[1]}, {{"by", true, ""}});
    auto n = d->integer("by");
    if (!n.ok()) return usage_error("the increment must be an integer");
    delta = **n;
  }
  auto r = c.increment(a.positional[0], delta);
  if (!r.ok()) return fail(g, r.status());
  if (g.json)
    std::printf("{\"value\":\"%lld\"}\n", static_cast<long long>(*r));
  else
    std::printf("%lld\n", static_cast<long long>(*r));
  return k_ok;
}

int cmd_range(const global& g, sc::client& c, const parsed_args& a) {
  auto limit = a.integer("limit");
  auto page = a.integer("page-size");
  if (!limit.ok()) return usage_error(std::string(limit.status().message()));
  if (!page.ok()) return usage_error(std::string(page.status().message()));
  sc::range_options o;
  o.prefix = a.positional.empty() ? "" : a.positional[0];
  o.keys_only = a.has("keys-only");
  if (*page) o.page_size = static_cast<uint32_t>(**page);
  if (*limit && (!*page || **page > **limit)) o.page_size = static_cast<uint32_t>(**limit);
  auto reader = c.range(o);
  int64_t shown = 0;
  while (!*limit || shown < **limit) {
    auto e = reader.next();
    if (!e.ok()) return fail(g, e.status());
    if (!e->has_value()) break;
    if (o.keys_only && !g.json) {
      std::printf("%s\n", display((*e)->key()).c_str());
    } else {
      print_entry(g, **e, true);
    }
    ++shown;
  }
  return k_ok;
}

int cmd_watch(const global& g, sc::client& c, const parsed_args& a) {
  auto from = a.integer("from-revision");
  if (!from.ok()) return usage_error(std::string(from.status().message()));
  sc::watch_options o;
  o.key = a.positional[0];
  o.prefix = a.has("prefix");
  o.prev_kv = a.has("prev-kv");
  if (*from) o.from_revision = static_cast<uint64_t>(**from);
  // Says why the stream broke each time it is reopened: a watch of a server that is down or
  // restarting waits for it, and the user should know what it waits for.
  o.on_retry = [&g](const absl::Status& why, std::chrono::milliseconds delay) {
    std::fprintf(stderr, "shoalctl: watch: %s: %s; retrying in %lld ms (Ctrl-C stops)\n",
                 absl::StatusCodeToString(why.code()).c_str(), std::string(why.message()).c_str(),
                 static_cast<long long>(delay.count()));
  };
  auto w = c.watch(o);
  on_interrupt([&w] { w.cancel(); });
  for (;;) {
    auto e = w.next();
    if (!e.ok()) {
      if (e.status().code() == absl::StatusCode::kCancelled) return k_ok;  // Ctrl-C
      return fail(g, e.status());
    }
    if (g.json) {
      std::printf("%s\n", to_json(*e).c_str());
    } else {
      const char* type = e->type() == v1::Event::PUT      ? "PUT"
                         : e->type() == v1::Event::DELETE ? "DELETE"
                                                          : "EXPIRE";
      std::printf("%llu %s %s", static_cast<unsigned long long>(e->revision()), type,
                  display(e->entry().key()).c_str());
      if (e->type() == v1::Event::PUT) {
        const std::string value = encode(e->entry().value(), g.values);
        std::printf("\t");
        std::fwrite(value.data(), 1, value.size(), stdout);
      }
      std::printf("\n");
    }
    std::fflush(stdout);
  }
}

// A Txn from protobuf's JSON mapping of TxnRequest (text, @file or -), as grpcurl takes it.
int cmd_txn(const global& g, sc::client& c, const parsed_args& a) {
  auto text = read_value(a.positional[0]);
  if (!text.ok()) return usage_error(std::string(text.status().message()));
  v1::TxnRequest req;
  if (!a.has("base64")) {
    text = text_bytes_to_base64(*text, v1::TxnRequest::descriptor());
    if (!text.ok()) return usage_error("the Txn is " + std::string(text.status().message()));
  }
  if (auto st = google::protobuf::util::JsonStringToMessage(*text, &req); !st.ok()) {
    return usage_error("the Txn is not a shoal.v1.TxnRequest in JSON: " + st.ToString());
  }
  auto r = c.txn(req);
  if (!r.ok()) return fail(g, r.status());
  if (g.json) {
    std::printf("%s\n", to_json(*r).c_str());
  } else {
    std::printf("%s", r->succeeded() ? "succeeded" : "failed: the failure branch ran");
    if (r->revision() != 0)
      std::printf(", revision %llu", static_cast<unsigned long long>(r->revision()));
    std::printf("\n");
    for (const auto& res : r->results()) std::printf("%s\n", to_json(res).c_str());
  }
  return r->succeeded() ? k_ok : k_not_applied;
}

// One line of `pipe` input: "get KEY", "put KEY VALUE", "del KEY" or "incr KEY [DELTA]", words
// split as split_words() does (quotes for blanks and escapes); or, with --ops-json, a
// shoal.v1.Op in JSON.
absl::StatusOr<v1::Op> parse_op_line(const std::string& line, bool json) {
  v1::Op op;
  if (json) {
    if (auto st = google::protobuf::util::JsonStringToMessage(line, &op); !st.ok()) {
      return absl::InvalidArgumentError("not a shoal.v1.Op in JSON: " + st.ToString());
    }
    return op;
  }
  auto words = split_words(line);
  if (!words.ok()) return words.status();
  const std::vector<std::string>& w = *words;
  const auto arity = [&](std::size_t lo, std::size_t hi) {
    return w.size() >= lo && w.size() <= hi;
  };
  if (!w.empty() && w[0] == "get" && arity(2, 2)) {
    op.mutable_get()->set_key(w[1]);
  } else if (!w.empty() && w[0] == "put" && arity(3, 3)) {
    op.mutable_put()->set_key(w[1]);
    op.mutable_put()->set_value(w[2]);
  } else if (!w.empty() && w[0] == "del" && arity(2, 2)) {
    op.mutable_delete_()->set_key(w[1]);
  } else if (!w.empty() && w[0] == "incr" && arity(2, 3)) {
    op.mutable_increment()->set_key(w[1]);
    int64_t delta = 1;
    if (w.size() == 3 && !absl::SimpleAtoi(w[2], &delta)) {
      return absl::InvalidArgumentError("the increment must be an integer");
    }
    op.mutable_increment()->set_delta(delta);
  } else {
    return absl::InvalidArgumentError(
        "expected get KEY, put KEY VALUE, del KEY or incr KEY [DELTA]");
  }
  return op;
}

// A reply of `pipe`, in the form the single commands print.
void print_pipe_reply(const global& g, const v1::PipelineResponse& r) {
  if (g.json) {
    std::printf("%s\n", to_json(r).c_str());
    return;
  }
  const v1::OpResult& res = r.result();
  switch (res.result_case()) {
    case v1::OpResult::kGet:
      std::printf("%s\n",
                  res.get().found() ? display(res.get().entry().value()).c_str() : "(not found)");
      break;
    case v1::OpResult::kPut:
      std::printf("OK revision %llu\n",
                  static_cast<unsigned long long>(res.put().entry().mod_revision()));
      break;
    case v1::OpResult::kDelete:
      std::printf("deleted %llu\n", static_cast<unsigned long long>(res.delete_().deleted()));
      break;
    case v1::OpResult::kIncrement:
      std::printf("%lld\n", static_cast<long long>(res.increment().value()));
      break;
    case v1::OpResult::kError:
      std::printf(
          "ERROR %s: %s\n",
          absl::StatusCodeToString(static_cast<absl::StatusCode>(res.error().code())).c_str(),
          res.error().message().c_str());
      break;
    default:
      std::printf("%s\n", to_json(r).c_str());
  }
}

// A line of `pipe` input that did not parse: where it stood among the operations, and why.
struct bad_line {
  std::size_t before_op;  // the index of the operation it preceded
  std::string error;      // "line N: ..."
};

void print_bad_line(const global& g, const bad_line& b) {
  if (g.json) {
    // The shape of a PipelineResponse whose operation failed, as the other lines have it.
    v1::PipelineResponse r;
    r.mutable_result()->mutable_error()->set_code(
        static_cast<int32_t>(grpc::StatusCode::INVALID_ARGUMENT));
    r.mutable_result()->mutable_error()->set_message(b.error);
    std::printf("%s\n", to_json(r).c_str());
  } else {
    std::printf("ERROR INVALID_ARGUMENT: %s\n", b.error.c_str());
  }
}

// Runs the operations read from stdin on one Pipeline stream, --window of them in flight, and
// prints the replies in order.
int cmd_pipe(const global& g, sc::client& c, const parsed_args& a) {
  auto window = a.integer("window");
  if (!window.ok()) return usage_error(std::string(window.status().message()));
  const int64_t w = window->value_or(64);
  if (w < 1) return usage_error("--window must be at least 1");
  // A line that does not parse is not run; its error is printed in its place, and the others run.
  std::vector<v1::Op> ops;
  std::vector<bad_line> bad;
  std::string line;
  for (int n = 1; std::getline(std::cin, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto op = parse_op_line(line, a.has("ops-json"));
    if (!op.ok()) {
      bad.push_back({ops.size(), absl::StrCat("line ", n, ": ", op.status().message())});
      std::fprintf(stderr, "shoalctl: %s (not run)\n", bad.back().error.c_str());
      continue;
    }
    ops.push_back(*std::move(op));
  }
  std::size_t next_bad = 0, replies = 0;
  const auto print_bad_lines_before = [&](std::size_t op_index) {
    for (; next_bad < bad.size() && bad[next_bad].before_op <= op_index; ++next_bad) {
      print_bad_line(g, bad[next_bad]);
    }
  };
  bool any_failed = !bad.empty();
  if (!ops.empty()) {
    sc::pipeline p = c.open_pipeline();
    const absl::Status st =
        p.run(ops, static_cast<std::size_t>(w), [&](const v1::PipelineResponse& r) {
          print_bad_lines_before(replies++);
          any_failed = any_failed || r.result().has_error() || r.has_error();
          print_pipe_reply(g, r);
        });
    if (!st.ok()) return fail(g, st);
  }
  print_bad_lines_before(ops.size());
  return any_failed ? k_error : k_ok;
}

int cmd_status(const global& g, sc::client& c, const parsed_args&) {
  auto r = c.status();
  if (!r.ok()) return fail(g, r.status());
  if (g.json) {
    std::printf("%s\n", to_json(*r).c_str());
    return k_ok;
  }
  // Every field, one per line: the message's own names, so nothing is left out.
  const auto* d = r->GetDescriptor();
  const auto* refl = r->GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const auto* f = d->field(i);
    if (f->type() == google::protobuf::FieldDescriptor::TYPE_MESSAGE) {
      std::printf("%s: %s\n", f->name().c_str(), to_json(refl->GetMessage(*r, f)).c_str());
      continue;
    }
    std::string text;
    google::protobuf::TextFormat::PrintFieldValueToString(*r, f, -1, &text);
    std::printf("%s: %s\n", f->name().c_str(), text.c_str());
  }
  return k_ok;
}

void print_summary(const global& g, const snapshot_summary& s) {
  if (g.json) {
    std::printf(
        "{\"revision\":\"%llu\",\"keys\":\"%llu\",\"bytes\":\"%llu\","
        "\"fileBytes\":\"%llu\",\"checksum\":\"%08x\"}\n",
        static_cast<unsigned long long>(s.revision), static_cast<unsigned long long>(s.keys),
        static_cast<unsigned long long>(s.bytes), static_cast<unsigned long long>(s.file_bytes),
        s.checksum);
    return;
  }
  std::printf("revision: %llu\nkeys: %llu\nbytes: %llu\nfile_bytes: %llu\nchecksum: %08x\n",
              static_cast<unsigned long long>(s.revision), static_cast<unsigned long long>(s.keys),
              static_cast<unsigned long long>(s.bytes),
              static_cast<unsigned long long>(s.file_bytes), s.checksum);
}

int cmd_snapshot(const global& g, sc::client& c, const parsed_args& a) {
  const std::string& what = a.positional[0];
  const std::string& file = a.positional[1];
  absl::StatusOr<snapshot_summary> s;
  if (what == "save") {
    // A large store takes longer than one call's usual deadline.
    const auto deadline = std::chrono::milliseconds(std::max<int64_t>(g.timeout_ms, 600'000));
    const bool tty = ::isatty(STDERR_FILENO);
    s = save_snapshot(c.admin_stub(), deadline, file, [&](uint64_t got, uint64_t total) {
      if (tty)
        std::fprintf(stderr, "\rreceived %llu of %llu bytes", static_cast<unsigned long long>(got),
                     static_cast<unsigned long long>(total));
    });
    if (tty) std::fprintf(stderr, "\n");
  } else if (what == "status") {
    s = describe_snapshot(file);
  } else if (what == "restore") {
    const auto dir = a.value("data-dir");
    if (!dir || dir->empty()) return usage_error("snapshot restore needs --data-dir=DIR");
    s = restore_snapshot(file, *dir);
    if (s.ok() && !g.json) {
      std::fprintf(stderr, "restored into %s: start shoald --data_dir=%s (a new store id)\n",
                   dir->c_str(), dir->c_str());
    }
  } else {
    return usage_error("snapshot takes save, status or restore, not '" + what + "'");
  }
  if (!s.ok()) return fail(g, s.status());
  print_summary(g, *s);
  return k_ok;
}

int cmd_config(const global& g, sc::client& c, const parsed_args& a) {
  const std::string what = a.positional.empty() ? "show" : a.positional[0];
  if (what == "show") {
    auto r = c.config();
    if (!r.ok()) return fail(g, r.status());
    std::printf("%s\n", to_json(*r).c_str());
    return k_ok;
  }
  if (what != "watch") return usage_error("config takes 'show' or 'watch'");
  grpc::ClientContext ctx;
  on_interrupt([&ctx] { ctx.TryCancel(); });
  auto reader = c.admin_stub().WatchConfig(&ctx, v1::WatchConfigRequest());
  v1::GetConfigResponse resp;
  while (reader->Read(&resp)) {
    std::printf("%s\n", to_json(g.json ? static_cast<const google::protobuf::Message&>(resp)
                                       : resp.config())
                            .c_str());
    std::fflush(stdout);
  }
  auto s = reader->Finish();
  if (s.error_code() == grpc::StatusCode::CANCELLED) return k_ok;
  return s.ok() ? k_ok : fail(g, sc::to_status(s));
}

// Replication's members: list (Status), add, remove, transfer. Changes go to the leader: a
// follower's refusal names it (shoal-leader metadata), and the change is sent there once.
int cmd_member(const global& g, sc::client& c, const parsed_args& a) {
  const std::string& what = a.positional[0];
  auto number = [&](std::size_t i, uint64_t* out) {
    return a.positional.size() > i && absl::SimpleAtoi(a.positional[i], out) && *out != 0;
  };
  auto print = [&](const v1::Replication& r) {
    if (g.json) {
      std::printf("%s\n", to_json(r).c_str());
      return;
    }
    std::printf("term %llu, leader %llu\n", static_cast<unsigned long long>(r.term()),
                static_cast<unsigned long long>(r.leader_id()));
    for (const auto& m : r.members()) {
      std::printf("%llu\tpeer %s\tclient %s%s\n", static_cast<unsigned long long>(m.id()),
                  m.peer().c_str(), m.client().c_str(), m.id() == r.leader_id() ? "\tleader" : "");
    }
  };
  if (what == "list") {
    auto r = c.status();
    if (!r.ok()) return fail(g, r.status());
    if (!r->has_replication()) return usage_error("this shoald is a single server (no --raft_id)");
    print(r->replication());
    return k_ok;
  }
  // One call, sent once more to the leader a follower names.
  auto call = [&](auto method, const auto& req) -> int {
    v1::MembersResponse resp;
    std::unique_ptr<v1::Admin::Stub> elsewhere;
    v1::Admin::Stub* stub = &c.admin_stub();
    grpc::Status st;
    for (int attempt = 0; attempt < 2; ++attempt) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(std::max<int64_t>(g.timeout_ms, 30'000)));
      st = (stub->*method)(&ctx, req, &resp);
      const auto& md = ctx.GetServerTrailingMetadata();
      auto hint = md.find("shoal-leader");
      if (st.ok() || st.error_code() != grpc::StatusCode::UNAVAILABLE || hint == md.end()) break;
      const std::string leader(hint->second.data(), hint->second.size());
      auto channel = sc::make_channel(c.opts(), leader);
      if (!channel.ok()) break;
      elsewhere = v1::Admin::NewStub(*channel);
      stub = elsewhere.get();
    }
    if (!st.ok()) return fail(g, sc::to_status(st));
    print(resp.replication());
    return k_ok;
  };
  uint64_t id = 0;
  if (what == "add") {
    if (!number(1, &id) || a.positional.size() != 4) {
      return usage_error("member add ID PEER_HOST:PORT CLIENT_HOST:PORT");
    }
    v1::AddMemberRequest req;
    req.set_id(id);
    req.set_peer(a.positional[2]);
    req.set_client(a.positional[3]);
    return call(&v1::Admin::Stub::AddMember, req);
  }
  if (what == "remove") {
    if (!number(1, &id)) return usage_error("member remove ID");
    v1::RemoveMemberRequest req;
    req.set_id(id);
    return call(&v1::Admin::Stub::RemoveMember, req);
  }
  if (what == "transfer") {
    if (a.positional.size() > 1 && !number(1, &id)) return usage_error("member transfer [ID]");
    v1::TransferLeadershipRequest req;
    req.set_id(id);
    return call(&v1::Admin::Stub::TransferLeadership, req);
  }
  return usage_error("member takes list, add, remove or transfer");
}

std::vector<flag_spec> with_encoding_flags(std::vector<flag_spec> flags) {
  flags.insert(flags.end(), k_encoding_flags.begin(), k_encoding_flags.end());
  return flags;
}

const std::vector<command>& commands() {
  static const std::vector<command> all = {
      {"get", "get KEY", "Prints the key's value.",
       "Writes the value's bytes as they are when stdout is not a terminal (get k > file gives\n"
       "  back exactly what was put), and escaped, with a line break, on a terminal.",
       with_encoding_flags({{"serializable", false,
                             "a replica: read its store as it is (possibly stale), not through "
                             "the leader"}}),
       1, 1, cmd_get},
      {"put",
       "put KEY VALUE",
       "Writes VALUE (text, @file, or - for stdin) under KEY.",
       "",
       {{"ttl", true, "expire after this many milliseconds"},
        {"keep-ttl", false, "keep the key's current expiry"},
        {"if-absent", false, "only if the key does not exist"},
        {"if-present", false, "only if the key exists"},
        {"if-revision", true, "only if the key's mod_revision is this (compare-and-swap)"}},
       2,
       2,
       cmd_put},
      {"del",
       "del KEY",
       "Deletes KEY, or with --prefix every key starting with KEY (also: delete).",
       "",
       {{"prefix", false, "delete every key with this prefix (each is its own revision)"},
        {"all", false, "with --prefix and an empty KEY: really delete every key"},
        {"if-revision", true, "only if the key's mod_revision is this"}},
       1,
       1,
       cmd_del},
      {"incr",
       "incr KEY [DELTA]",
       "Adds DELTA (default 1) to a decimal integer value and prints the result.",
       "",
       {},
       1,
       2,
       cmd_incr},
      {"range", "range [PREFIX]", "Lists keys and values in key order, following pages.", "",
       with_encoding_flags({{"limit", true, "stop after this many entries"},
                            {"page-size", true, "entries per request"},
                            {"keys-only", false, "keys only"}}),
       0, 1, cmd_range},
      {"watch", "watch KEY",
       "Prints changes to KEY (or with --prefix, keys under it) until Ctrl-C.",
       "While the server cannot be reached, says so on stderr and retries; Ctrl-C or SIGTERM\n"
       "  ends it at any time (exit code 0).",
       with_encoding_flags(
           {{"prefix", false, "watch every key starting with KEY"},
            {"from-revision", true, "replay from this revision (if still in the history)"},
            {"prev-kv", false, "include each event's previous entry (with --json)"}}),
       1, 1, cmd_watch},
      {"txn",
       "txn JSON",
       "Runs a Txn given as a shoal.v1.TxnRequest in JSON (text, @file, or - for stdin).",
       "Keys and values are text, e.g.\n"
       "  '{\"compares\":[{\"key\":\"a\",\"target\":\"VERSION\",\"number\":\"0\"}],\n"
       "    \"success\":[{\"put\":{\"key\":\"a\",\"value\":\"1\"}}]}'\n"
       "  With --base64, bytes fields are in base64, as in protobuf's JSON mapping and grpcurl.\n"
       "  Give 64-bit numbers as strings (\"number\":\"0\"). Exit code 4 when the compares fail\n"
       "  (the failure branch ran).",
       {{"base64", false, "keys and values in the JSON are base64 (protobuf's JSON mapping)"}},
       1,
       1,
       cmd_txn},
      {"pipe",
       "pipe",
       "Runs operations read from stdin, one per line, on one Pipeline stream.",
       "Lines: get KEY, put KEY VALUE, del KEY, incr KEY [DELTA]. Words are split at blanks;\n"
       "  \"double quotes\" (with \\\" \\\\ \\n \\t escapes) and 'single quotes' keep blanks, and "
       "\"\" is\n"
       "  an empty word. Replies are printed in input order. A line that does not parse is not\n"
       "  run: its ERROR is printed in its place, and the other lines run. Exit code 1 if any\n"
       "  line failed (its reply says ERROR).",
       {{"window", true, "requests in flight (default 64)"},
        {"ops-json", false, "each line is a shoal.v1.Op in JSON (bytes in base64)"}},
       0,
       0,
       cmd_pipe},
      {"status",
       "status",
       "Shows the server's revision, keys, bytes, watchers and configuration source.",
       "",
       {},
       0,
       0,
       cmd_status},
      {"snapshot",
       "snapshot save|status|restore FILE",
       "Saves a durable server's store to FILE, describes FILE, or restores it.",
       "save FILE: a consistent copy at the server's durable revision (needs shoald --data_dir),\n"
       "    checked whole before it takes FILE's name; progress on stderr.\n"
       "  status FILE: its revision, keys, bytes and checksum (the file is checked whole).\n"
       "  restore FILE --data-dir=DIR: a new data directory holding FILE's store; shoald\n"
       "    --data_dir=DIR then serves it at FILE's revision, with a new store id.",
       {{"data-dir", true, "restore: the new data directory (must not exist, or be empty)"}},
       2,
       2,
       cmd_snapshot},
      {"member",
       "member list|add ID PEER CLIENT|remove ID|transfer [ID]",
       "Lists a replicated store's members, or changes them on the leader.",
       "list: each member's id, peer (Raft) and client (gRPC) addresses, and the leader.\n"
       "  add ID PEER CLIENT: a new replica (an id never used before), a voter once caught up;\n"
       "    start it first, with an empty --data_dir and without --raft_bootstrap.\n"
       "  remove ID: the member leaves (a replica back with an empty disk is removed, then\n"
       "    added under a new id). transfer [ID]: leadership to ID (default: the most\n"
       "    up-to-date member). Sent to the leader (a follower names it).",
       {},
       1,
       4,
       cmd_member},
      {"config",
       "config [show|watch]",
       "Shows the effective configuration, or streams its changes.",
       "",
       {},
       0,
       1,
       cmd_config},
  };
  return all;
}

const std::vector<flag_spec> k_global_flags = {
    {"addr", true, "server address (default: $SHOAL_ADDR, else 127.0.0.1:50051)"},
    {"json", false, "machine-readable output: protobuf's JSON mapping, one object per line"},
    {"timeout-ms", true, "deadline of each call (default 5000)"},
    {"cacert", true, "TLS: the CAs (PEM file) that sign the server's certificate ($SHOAL_CACERT)"},
    {"cert", true, "mTLS: this client's certificate (PEM file; $SHOAL_CERT)"},
    {"key", true, "mTLS: the certificate's key (PEM file; $SHOAL_KEY)"},
    {"token", true, "bearer token sent with every call ($SHOAL_TOKEN: kept out of ps)"},
    {"help", false, "this help"},
    {"version", false, "shoalctl's version"},
};

// A global flag given as --name VALUE: its value is the next argument.
bool takes_value(std::string_view arg) {
  if (arg.rfind("--", 0) != 0 || arg.find('=') != std::string_view::npos) return false;
  for (const auto& f : k_global_flags) {
    if (f.takes_value && arg.substr(2) == f.name) return true;
  }
  return false;
}

// Other names users reach for.
const command* find_command(std::string_view name) {
  if (name == "delete") name = "del";
  for (const auto& c : commands()) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

void print_flags(const std::vector<flag_spec>& flags) {
  for (const auto& f : flags) {
    std::printf("  --%s%s\n      %s\n", f.name.c_str(), f.takes_value ? "=VALUE" : "",
                f.help.c_str());
  }
}

void print_help() {
  std::printf("shoalctl: Shoal from the shell\n\nusage: shoalctl [FLAGS] COMMAND [ARGS]\n\n");
  for (const auto& c : commands())
    std::printf("  %-22s %s\n", c.synopsis.c_str(), c.summary.c_str());
  std::printf("\nflags (any command):\n");
  print_flags(k_global_flags);
  std::printf("\n'shoalctl COMMAND --help' shows a command's flags.\n%s", k_exit_codes);
}

int run(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  // The command is the first argument that is not a global flag (or a global flag's value).
  const command* cmd = nullptr;
  for (std::size_t i = 0; i < args.size() && cmd == nullptr; ++i) {
    if (takes_value(args[i])) {
      ++i;
      continue;
    }
    if (args[i].rfind("--", 0) == 0) continue;
    cmd = find_command(args[i]);
    if (cmd == nullptr) return usage_error("unknown command '" + args[i] + "'");
    args.erase(args.begin() + static_cast<std::ptrdiff_t>(i));
  }
  if (cmd == nullptr && std::find(args.begin(), args.end(), "--version") != args.end()) {
    std::printf("shoalctl %s (gRPC %s)\n", SHOAL_VERSION, grpc::Version().c_str());
    return k_ok;
  }
  if (cmd == nullptr) {
    print_help();
    return std::find(args.begin(), args.end(), "--help") != args.end() ? k_ok : k_usage;
  }
  std::vector<flag_spec> accepted = k_global_flags;
  accepted.insert(accepted.end(), cmd->flags.begin(), cmd->flags.end());
  auto parsed = parse(args, accepted);
  if (!parsed.ok()) return usage_error(std::string(parsed.status().message()));
  if (parsed->has("help")) {
    std::printf("usage: shoalctl %s\n\n%s\n", cmd->synopsis.c_str(), cmd->summary.c_str());
    if (!cmd->help.empty()) std::printf("  %s\n", cmd->help.c_str());
    if (!cmd->flags.empty()) {
      std::printf("\nflags:\n");
      print_flags(cmd->flags);
    }
    std::printf("\n%s", k_exit_codes);
    return k_ok;
  }
  const int n = static_cast<int>(parsed->positional.size());
  if (n < cmd->min_args || n > cmd->max_args) {
    return usage_error("usage: shoalctl " + cmd->synopsis);
  }
  global g;
  g.addr = parsed->value("addr").value_or("");
  g.json = parsed->has("json");
  auto timeout = parsed->integer("timeout-ms");
  if (!timeout.ok()) return usage_error(std::string(timeout.status().message()));
  if (*timeout) g.timeout_ms = **timeout;
  // A value alone (get) is raw unless a terminal shows it; lines of entries are escaped.
  const bool alone_to_a_file = cmd->name == "get" && !::isatty(STDOUT_FILENO);
  auto values = chosen_encoding(*parsed, alone_to_a_file ? encoding::raw : encoding::escaped);
  if (!values.ok()) return usage_error(std::string(values.status().message()));
  g.values = *values;

  // Signals go to the thread that waits for them (streaming commands), not to a random one.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  if (cmd->name == "watch" || cmd->name == "config") pthread_sigmask(SIG_BLOCK, &set, nullptr);

  sc::options o;
  o.target = g.addr;
  o.deadline = std::chrono::milliseconds(g.timeout_ms);
  o.ca_file = parsed->value("cacert").value_or("");
  o.cert_file = parsed->value("cert").value_or("");
  o.key_file = parsed->value("key").value_or("");
  o.token = parsed->value("token").value_or("");
  sc::client c(o);
  g.addr = c.target();
  if (!c.setup().ok()) return fail(g, c.setup());
  return cmd->run(g, c, *parsed);
}

}  // namespace
}  // namespace shoal::cli

int main(int argc, char** argv) { return shoal::cli::run(argc, argv); }
