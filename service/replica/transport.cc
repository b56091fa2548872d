#include "service/replica/transport.h"

#include <netdb.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "service/replica/member.h"
#include "service/replica/tls_link.h"

namespace shoal::service::replica {
namespace {

constexpr uint64_t k_magic = 0x666172'6c616f6873ULL;  // "shoalraf", little-endian
// The introduction of a watch connection (transport_watch): held open, never handed to Raft.
constexpr uint64_t k_watch_magic = 0x686377'6c616f6873ULL;  // "shoalwch"
// The introduction of a probe (transport_probe): answered with the log's position, then closed.
constexpr uint64_t k_probe_magic = 0x627270'6c616f6873ULL;  // "shoalprb"
constexpr std::size_t k_fixed = 28;                         // magic, id, incarnation, address size
constexpr std::size_t k_reply = 32;                         // magic, id, incarnation, commit index
// The same, then last log index and term, the leader followed and ms since it was heard from.
constexpr std::size_t k_probe_reply = 64;
constexpr uint32_t k_max_address = 1024;
// A connection that has not introduced itself (and, with TLS, finished its handshake) within this
// is closed, either side: a peer that connects and stays silent holds nothing for long.
constexpr uint64_t k_introduction_ms = 5000;
// At most this many accepted connections wait for their introduction; one more closes the oldest.
// A replica's own connections introduce themselves within milliseconds.
constexpr std::size_t k_max_unintroduced = 64;
// Dials of one watch: the first, then re-dials after its connection ends (each one that is
// answered, or fails without a refusal, spends one). A path that keeps dropping connections is
// not dialled for ever: Raft's election timeout is still there.
constexpr int k_watch_dials = 4;
constexpr uint64_t k_watch_lasted_ms = 10'000;

struct impl;

// An accepted connection, reading the introduction.
struct incoming {
  impl* owner = nullptr;
  // The TCP connection, or a TLS link's plain side; raft_malloc'd: Raft frees the stream it is
  // handed.
  uv_stream_t* stream = nullptr;
  std::shared_ptr<const peer_certificate> certificate;  // with TLS
  std::string from;                                     // the peer's IP address
  uint64_t since = 0;                                   // uv_now when accepted
  char fixed[k_fixed];
  std::size_t got = 0;
  uint64_t id = 0;
  uint64_t incarnation = 0;
  std::string address;
  uint64_t magic = 0;  // k_magic: Raft's; k_watch_magic: held; k_probe_magic: answered, closed
};

// An accepted watch connection, held open and read (whatever arrives is dropped) until the
// watching member closes it.
struct held {
  impl* owner = nullptr;
  uint64_t id = 0;
  uint64_t since = 0;
  uv_stream_t* stream = nullptr;
};

struct watch_state;

// The accepting side's answer, written as the stream is handed to Raft (which only reads an
// accepted stream); it lives until its write completes (or is cancelled by a close).
struct reply_write {
  uv_write_t req{};
  char bytes[k_probe_reply];
  uv_stream_t* close_after = nullptr;  // a probe's stream, closed once its answer is written
};

// A connect request on its way: resolve, connect, introduce.
struct outgoing {
  impl* owner = nullptr;
  raft_uv_connect* req = nullptr;
  raft_uv_connect_cb cb = nullptr;
  std::string host;
  std::string port;
  std::string hello;
  // A dial of the transport's own (a watch, a probe), instead of Raft's req and cb: the stream
  // (null: it failed) and the finished dial.
  std::function<void(uv_stream_t*, const outgoing&)> then;
  std::size_t reply_size = k_reply;
  probe_answer answer;   // a probe's
  bool refused = false;  // the connect was refused: nothing listens there
  uint64_t id = 0;       // the member dialled
  uint64_t since = 0;    // uv_now when resolved (the connect began)
  uv_getaddrinfo_t gai{};
  uv_connect_t conn{};
  uv_write_t write{};
  uv_stream_t* stream = nullptr;  // the TCP connection, then (with TLS) the link's plain side
  char reply[k_probe_reply];
  std::size_t got = 0;
  enum class stage { resolving, connecting, introducing, answered } at = stage::resolving;
  bool canceled = false;
  bool timed_out = false;  // canceled for taking too long: Raft may dial again
  bool stream_closing = false;
  bool reading = false;  // awaiting the answer (a close stops the read without a callback)
};

// The member this replica watches (transport_watch), on the dialling side.
struct watch_state {
  impl* owner = nullptr;
  uint64_t id = 0;
  std::string address;
  std::function<void(uint64_t)> gone;
  outgoing* dialing = nullptr;    // a dial on its way
  uv_stream_t* stream = nullptr;  // the connection, once answered
  int dials_left = k_watch_dials;
  uint64_t since = 0;  // uv_now when its connection was answered
  bool ended = false;  // unwatched: freed once its dial, if any, has finished
};

struct impl {
  raft_uv_transport* t = nullptr;
  uv_loop_t* loop = nullptr;
  std::string listen;
  raft_id id = 0;
  uint64_t incarnation = 0;
  transport_hooks hooks;
  tls_files tls;
  tls_links links;  // with TLS: the links open, closed with the transport
  std::string address;
  raft_uv_accept_cb accept_cb = nullptr;
  uv_tcp_t listener{};
  bool listener_open = false;
  uv_timer_t sweeper{};  // closes connections past k_introduction_ms
  bool sweeper_open = false;
  std::set<incoming*> in;
  std::set<outgoing*> out;
  std::set<held*> held_open;
  watch_state* watch = nullptr;
  int own_streams_closing = 0;  // watch and probe connections whose close callback is to come
  bool closing = false;
  raft_uv_transport_close_cb close_cb = nullptr;
};

impl* of(raft_uv_transport* t) { return static_cast<impl*>(t->impl); }

void sweep(uv_timer_t* timer);

void free_handle(uv_handle_t* h) { raft_free(h); }

void maybe_closed(impl* p) {
  if (!p->closing || p->listener_open || p->sweeper_open || !p->in.empty() || !p->out.empty() ||
      !p->held_open.empty() || p->own_streams_closing != 0) {
    return;
  }
  if (p->close_cb != nullptr) {
    auto cb = p->close_cb;
    p->close_cb = nullptr;
    cb(p->t);
  }
}

// ---- accepting ------------------------------------------------------------------------------

void drop_incoming(incoming* c) {
  c->owner->in.erase(c);
  uv_close(reinterpret_cast<uv_handle_t*>(c->stream), free_handle);
  impl* p = c->owner;
  delete c;
  maybe_closed(p);
}

void alloc_exact(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto* c = static_cast<incoming*>(h->data);
  if (c->got < k_fixed) {
    *buf = uv_buf_init(c->fixed + c->got, static_cast<unsigned>(k_fixed - c->got));
  } else {
    const std::size_t at = c->got - k_fixed;
    *buf = uv_buf_init(c->address.data() + at, static_cast<unsigned>(c->address.size() - at));
  }
}

// With TLS, the member a connection says it is must be one this replica knows, at the address
// it knows, and the certificate must name that member's peer host: a certificate of one replica
// cannot speak for another (nor for a member yet to come).
bool certificate_names_sender(incoming* c) {
  if (c->certificate == nullptr) return true;
  const std::string key = "from " + c->from;
  const std::string known = c->owner->hooks.peer_of(c->id);
  member claimed;
  std::string host;
  std::string port;
  std::string problem;
  if (known.empty()) {
    problem = absl::StrCat("a peer introduced itself as member ", c->id,
                           ", which is not among this replica's members");
  } else if (!split_address(c->address, &claimed) || claimed.peer != known) {
    problem = absl::StrCat("a peer introduced itself as member ", c->id, " at ", claimed.peer,
                           "; that member's peer address is ", known);
  } else if (!split_host_port(known, &host, &port) || !c->certificate->names(host)) {
    problem = absl::StrCat("a peer introduced itself as member ", c->id, " at ", known,
                           " with a certificate that does not name ", host);
  }
  c->owner->hooks.problem(key, problem);
  return problem.empty();
}

void drop_held(held* h) {
  impl* p = h->owner;
  p->held_open.erase(h);
  uv_close(reinterpret_cast<uv_handle_t*>(h->stream), free_handle);
  delete h;
  maybe_closed(p);
}

// Reads of connections that carry nothing (watches, either side): whatever arrives is dropped.
void alloc_discard(uv_handle_t*, size_t, uv_buf_t* buf) {
  thread_local char sink[64];  // the loop thread's
  *buf = uv_buf_init(sink, sizeof sink);
}

void on_held_read(uv_stream_t* s, ssize_t n, const uv_buf_t*) {
  if (n < 0) drop_held(static_cast<held*>(s->data));  // the watcher closed it, or went away
}

// A member's watch connection to this one: held open until that member closes it. One per
// member (a newer one replaces it), and at most k_max_unintroduced in all (the oldest goes).
void hold(impl* p, uint64_t id, uv_stream_t* stream) {
  for (held* h : std::set<held*>(p->held_open)) {
    if (h->id == id) drop_held(h);
  }
  if (p->held_open.size() >= k_max_unintroduced) {
    drop_held(*std::min_element(p->held_open.begin(), p->held_open.end(),
                                [](held* a, held* b) { return a->since < b->since; }));
  }
  auto* h = new held();
  h->owner = p;
  h->id = id;
  h->since = uv_now(p->loop);
  h->stream = stream;
  stream->data = h;
  p->held_open.insert(h);
  if (uv_read_start(stream, alloc_discard, on_held_read) != 0) drop_held(h);
}

void on_introduction(uv_stream_t* s, ssize_t n, const uv_buf_t*) {
  auto* c = static_cast<incoming*>(s->data);
  if (n < 0) return drop_incoming(c);
  const bool had_fixed = c->got >= k_fixed;
  c->got += static_cast<std::size_t>(n);
  if (!had_fixed && c->got == k_fixed) {
    uint64_t magic = 0;
    uint32_t size = 0;
    std::memcpy(&magic, c->fixed, 8);
    std::memcpy(&c->id, c->fixed + 8, 8);
    std::memcpy(&c->incarnation, c->fixed + 16, 8);
    std::memcpy(&size, c->fixed + 24, 4);
    if ((magic != k_magic && magic != k_watch_magic && magic != k_probe_magic) || c->id == 0 ||
        size == 0 || size > k_max_address) {
      return drop_incoming(c);
    }
    c->magic = magic;
    c->address.resize(size);
    return;
  }
  if (c->got < k_fixed || c->got < k_fixed + c->address.size()) return;
  uv_read_stop(s);
  impl* p = c->owner;
  // Who it is first (with TLS), then which disk: an impostor's incarnation is never recorded.
  if (!certificate_names_sender(c) || !p->hooks.admit(c->id, c->incarnation)) {
    return drop_incoming(c);
  }
  p->in.erase(c);
  uv_stream_t* stream = c->stream;
  stream->data = nullptr;
  const uint64_t id = c->id;
  const std::string address = std::move(c->address);
  const uint64_t kind = c->magic;
  delete c;
  // Who answered: the connecting side checks it in turn.
  auto* r = new reply_write();
  std::memcpy(r->bytes, &k_magic, 8);
  std::memcpy(r->bytes + 8, &p->id, 8);
  std::memcpy(r->bytes + 16, &p->incarnation, 8);
  const uint64_t commit = p->hooks.commit_index();
  std::memcpy(r->bytes + 24, &commit, 8);
  std::size_t size = k_reply;
  if (kind == k_probe_magic) {
    const probe_answer view = p->hooks.probe_view();
    std::memcpy(r->bytes + 32, &view.last_index, 8);
    std::memcpy(r->bytes + 40, &view.last_term, 8);
    std::memcpy(r->bytes + 48, &view.leader_id, 8);
    std::memcpy(r->bytes + 56, &view.silent_ms, 8);
    size = k_probe_reply;
    r->close_after = stream;
  }
  uv_buf_t buf = uv_buf_init(r->bytes, static_cast<unsigned>(size));
  r->req.data = r;
  const int written = uv_write(&r->req, stream, &buf, 1, [](uv_write_t* w, int) {
    auto* done = static_cast<reply_write*>(w->data);
    if (done->close_after != nullptr) {
      uv_close(reinterpret_cast<uv_handle_t*>(done->close_after), free_handle);
    }
    delete done;
  });
  if (written != 0) {
    if (r->close_after != nullptr) uv_close(reinterpret_cast<uv_handle_t*>(stream), free_handle);
    delete r;
  }
  if (kind == k_probe_magic) {
    if (p->hooks.probed_by) p->hooks.probed_by(id);
    return;
  }
  if (kind == k_watch_magic) return hold(p, id, stream);
  p->accept_cb(p->t, id, address.c_str(), stream);
}

std::string ip_of_peer(uv_tcp_t* tcp) {
  sockaddr_storage addr{};
  int len = sizeof addr;
  char text[INET6_ADDRSTRLEN] = "?";
  if (uv_tcp_getpeername(tcp, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    if (addr.ss_family == AF_INET6) {
      uv_ip6_name(reinterpret_cast<sockaddr_in6*>(&addr), text, sizeof text);
    } else {
      uv_ip4_name(reinterpret_cast<sockaddr_in*>(&addr), text, sizeof text);
    }
  }
  return text;
}

// Raft's messages go out as soon as they are written. With Nagle's algorithm on, a leader's
// AppendEntries written while the previous one is still unacknowledged waited for that
// acknowledgement, which the follower delays: Put throughput on the leader of three was about
// 13% lower (docs/benchmarks.md).
void set_nodelay(uv_tcp_t* tcp) { uv_tcp_nodelay(tcp, 1); }

void on_connection(uv_stream_t* server, int status) {
  auto* p = static_cast<impl*>(server->data);
  if (status < 0 || p->closing) return;
  auto* tcp = static_cast<uv_tcp_t*>(raft_malloc(sizeof(uv_tcp_t)));
  uv_tcp_init(p->loop, tcp);
  if (uv_accept(server, reinterpret_cast<uv_stream_t*>(tcp)) != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(tcp), free_handle);
    return;
  }
  set_nodelay(tcp);
  if (p->in.size() >= k_max_unintroduced) {
    drop_incoming(*std::min_element(p->in.begin(), p->in.end(),
                                    [](incoming* a, incoming* b) { return a->since < b->since; }));
  }
  auto* c = new incoming();
  c->owner = p;
  c->since = uv_now(p->loop);
  c->from = ip_of_peer(tcp);
  c->stream = reinterpret_cast<uv_stream_t*>(tcp);
  if (p->tls.on()) {
    const std::string key = "from " + c->from;
    auto link = open_tls_link(
        p->loop, tcp, p->tls, /*dialled=*/"", &p->links,
        [report = p->hooks.problem, key](const std::string& why) { report(key, why); });
    if (!link.ok()) {  // the files could not be read: tcp is closed
      p->hooks.problem(key, std::string(link.status().message()));
      delete c;
      return;
    }
    c->stream = link->plain;
    c->certificate = link->peer;
  }
  c->stream->data = c;
  p->in.insert(c);
  if (uv_read_start(c->stream, alloc_exact, on_introduction) != 0) drop_incoming(c);
}

int do_init(raft_uv_transport* t, raft_id id, const char* address) {
  impl* p = of(t);
  p->id = id;
  p->address = address;
  return 0;
}

int do_listen(raft_uv_transport* t, raft_uv_accept_cb cb) {
  impl* p = of(t);
  p->accept_cb = cb;
  if (!p->sweeper_open) {
    uv_timer_init(p->loop, &p->sweeper);
    p->sweeper.data = p;
    p->sweeper_open = true;
    uv_timer_start(&p->sweeper, sweep, 1000, 1000);
    uv_unref(reinterpret_cast<uv_handle_t*>(&p->sweeper));  // never keeps the loop alive alone
  }
  std::string host;
  std::string port;
  if (!split_host_port(p->listen, &host, &port)) {
    std::snprintf(t->errmsg, sizeof(t->errmsg), "the Raft listen address is not host:port");
    return RAFT_INVALID;
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0 || res == nullptr) {
    std::snprintf(t->errmsg, sizeof(t->errmsg), "cannot resolve the Raft listen host");
    return RAFT_IOERR;
  }
  uv_tcp_init(p->loop, &p->listener);
  p->listener.data = p;
  p->listener_open = true;
  int rv = uv_tcp_bind(&p->listener, res->ai_addr, 0);
  freeaddrinfo(res);
  if (rv == 0) rv = uv_listen(reinterpret_cast<uv_stream_t*>(&p->listener), 128, on_connection);
  if (rv != 0) {
    std::snprintf(t->errmsg, sizeof(t->errmsg), "cannot listen on the Raft port: %s",
                  uv_strerror(rv));
    return RAFT_IOERR;
  }
  return 0;
}

// ---- connecting -----------------------------------------------------------------------------

void finish(outgoing* o, int status) {
  impl* p = o->owner;
  p->out.erase(o);
  uv_stream_t* stream = status == 0 ? o->stream : nullptr;
  if (status != 0 && o->stream != nullptr && !o->stream_closing) {
    uv_close(reinterpret_cast<uv_handle_t*>(o->stream), free_handle);
  }
  if (stream != nullptr) stream->data = nullptr;
  if (o->then) {
    o->then(stream, *o);
  } else {
    o->cb(o->req, stream, status);
  }
  delete o;
  maybe_closed(p);
}

int failure(const outgoing* o) {
  return o->canceled && !o->timed_out ? RAFT_CANCELED : RAFT_NOCONNECTION;
}

void alloc_reply(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto* o = static_cast<outgoing*>(h->data);
  *buf = uv_buf_init(o->reply + o->got, static_cast<unsigned>(o->reply_size - o->got));
}

void on_reply(uv_stream_t* s, ssize_t n, const uv_buf_t*) {
  auto* o = static_cast<outgoing*>(s->data);
  if (n < 0 || o->canceled) {
    uv_read_stop(s);
    o->reading = false;
    return finish(o, failure(o));
  }
  o->got += static_cast<std::size_t>(n);
  if (o->got < o->reply_size) return;
  uv_read_stop(s);
  o->reading = false;
  uint64_t magic = 0;
  uint64_t id = 0;
  uint64_t incarnation = 0;
  uint64_t commit = 0;
  std::memcpy(&magic, o->reply, 8);
  std::memcpy(&id, o->reply + 8, 8);
  std::memcpy(&incarnation, o->reply + 16, 8);
  std::memcpy(&commit, o->reply + 24, 8);
  if (o->reply_size == k_probe_reply) {
    std::memcpy(&o->answer.last_index, o->reply + 32, 8);
    std::memcpy(&o->answer.last_term, o->reply + 40, 8);
    std::memcpy(&o->answer.leader_id, o->reply + 48, 8);
    std::memcpy(&o->answer.silent_ms, o->reply + 56, 8);
  }
  // The member dialled must answer as itself, with the disk it had.
  if (magic != k_magic || id != o->id || !o->owner->hooks.admit(id, incarnation)) {
    return finish(o, RAFT_NOCONNECTION);
  }
  if (o->owner->tls.on()) o->owner->hooks.problem(absl::StrCat("to ", o->id), "");
  o->owner->hooks.peer_commit(id, commit);
  o->at = outgoing::stage::answered;
  finish(o, 0);
}

void on_introduced(uv_write_t* w, int status) {
  auto* o = static_cast<outgoing*>(w->data);
  if (status != 0 || o->canceled) return finish(o, failure(o));
  if (uv_read_start(o->stream, alloc_reply, on_reply) != 0) {
    return finish(o, failure(o));
  }
  o->reading = true;
}

void on_connected(uv_connect_t* c, int status) {
  auto* o = static_cast<outgoing*>(c->data);
  o->refused = status == UV_ECONNREFUSED;
  if (status != 0 || o->canceled) return finish(o, failure(o));
  set_nodelay(reinterpret_cast<uv_tcp_t*>(o->stream));
  impl* p = o->owner;
  if (p->tls.on()) {
    // The introduction and Raft's messages travel inside TLS from here.
    const std::string key = absl::StrCat("to ", o->id);
    auto link = open_tls_link(
        p->loop, reinterpret_cast<uv_tcp_t*>(o->stream), p->tls, o->host, &p->links,
        [report = p->hooks.problem, key](const std::string& why) { report(key, why); });
    if (!link.ok()) {  // the files could not be read: the connection is closed
      p->hooks.problem(key, std::string(link.status().message()));
      o->stream = nullptr;
      return finish(o, RAFT_NOCONNECTION);
    }
    o->stream = link->plain;
    o->stream->data = o;
  }
  o->at = outgoing::stage::introducing;
  uv_buf_t buf = uv_buf_init(o->hello.data(), static_cast<unsigned>(o->hello.size()));
  o->write.data = o;
  if (uv_write(&o->write, o->stream, &buf, 1, on_introduced) != 0) {
    finish(o, failure(o));
  }
}

void on_resolved(uv_getaddrinfo_t* g, int status, addrinfo* res) {
  auto* o = static_cast<outgoing*>(g->data);
  if (status != 0 || o->canceled || res == nullptr) {
    if (res != nullptr) uv_freeaddrinfo(res);
    return finish(o, failure(o));
  }
  auto* tcp = static_cast<uv_tcp_t*>(raft_malloc(sizeof(uv_tcp_t)));
  uv_tcp_init(o->owner->loop, tcp);
  tcp->data = o;
  o->stream = reinterpret_cast<uv_stream_t*>(tcp);
  o->since = uv_now(o->owner->loop);
  o->at = outgoing::stage::connecting;
  o->conn.data = o;
  const int rv = uv_tcp_connect(&o->conn, tcp, res->ai_addr, on_connected);
  uv_freeaddrinfo(res);
  if (rv != 0) finish(o, failure(o));
}

// Starts dialling member `id` at `address` ("peer/client"): o, or null (address not
// peer/client: RAFT_INVALID; the lookup could not start: RAFT_NOCONNECTION, in *rv).
outgoing* dial(impl* p, uint64_t id, const std::string& address, uint64_t magic, int* rv) {
  member m;
  auto* o = new outgoing();
  if (!split_address(address, &m) || !split_host_port(m.peer, &o->host, &o->port)) {
    delete o;
    *rv = RAFT_INVALID;
    return nullptr;
  }
  o->owner = p;
  o->id = id;
  const uint32_t size = static_cast<uint32_t>(p->address.size());
  o->hello.resize(k_fixed);
  std::memcpy(o->hello.data(), &magic, 8);
  std::memcpy(o->hello.data() + 8, &p->id, 8);
  std::memcpy(o->hello.data() + 16, &p->incarnation, 8);
  std::memcpy(o->hello.data() + 24, &size, 4);
  o->hello += p->address;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  o->gai.data = o;
  p->out.insert(o);
  // Resolved at every connect: a pod that moved has a new address under the same name.
  if (uv_getaddrinfo(p->loop, &o->gai, on_resolved, o->host.c_str(), o->port.c_str(), &hints) !=
      0) {
    p->out.erase(o);
    delete o;
    *rv = RAFT_NOCONNECTION;
    return nullptr;
  }
  return o;
}

int do_connect(raft_uv_transport* t, raft_uv_connect* req, raft_id id, const char* address,
               raft_uv_connect_cb cb) {
  int rv = 0;
  outgoing* o = dial(of(t), id, address, k_magic, &rv);
  if (o == nullptr) {
    if (rv == RAFT_INVALID) {
      std::snprintf(t->errmsg, sizeof(t->errmsg), "a member address is not peer/client");
    }
    return rv;
  }
  o->req = req;
  o->cb = cb;
  return 0;
}

// ---- watching -------------------------------------------------------------------------------

void cancel(outgoing* o);

void close_own_stream(impl* p, uv_stream_t* stream) {
  ++p->own_streams_closing;
  stream->data = p;
  uv_close(reinterpret_cast<uv_handle_t*>(stream), [](uv_handle_t* h) {
    auto* owner = static_cast<impl*>(h->data);
    raft_free(h);
    --owner->own_streams_closing;
    maybe_closed(owner);
  });
}

void redial(watch_state* w);
void watch_dialed(watch_state* w, uv_stream_t* stream, bool refused);

void on_watch_read(uv_stream_t* s, ssize_t n, const uv_buf_t*) {
  if (n >= 0) return;  // nothing is sent on a watch connection; whatever comes is dropped
  auto* w = static_cast<watch_state*>(s->data);
  w->stream = nullptr;
  // One that lasted is not a path that keeps dropping connections: the budget starts again.
  if (uv_now(w->owner->loop) - w->since >= k_watch_lasted_ms) w->dials_left = k_watch_dials;
  close_own_stream(w->owner, s);
  redial(w);  // ended: is anything still listening there?
}

void redial(watch_state* w) {
  if (w->dials_left <= 0) return;  // left to Raft's election timeout
  --w->dials_left;
  int rv = 0;
  w->dialing = dial(w->owner, w->id, w->address, k_watch_magic, &rv);
  if (w->dialing == nullptr) return;
  w->dialing->then = [w](uv_stream_t* stream, const outgoing& o) {
    watch_dialed(w, stream, o.refused && !o.canceled);
  };
}

void watch_dialed(watch_state* w, uv_stream_t* stream, bool refused) {
  w->dialing = nullptr;
  if (w->ended) {
    if (stream != nullptr) close_own_stream(w->owner, stream);
    delete w;
    return;
  }
  if (stream != nullptr) {
    w->stream = stream;
    w->since = uv_now(w->owner->loop);
    stream->data = w;
    // A connection that carries nothing: keepalive finds one a middlebox forgot (with TLS, the
    // link's TCP connection has it already).
    if (!w->owner->tls.on()) uv_tcp_keepalive(reinterpret_cast<uv_tcp_t*>(stream), 1, 30);
    if (uv_read_start(stream, alloc_discard, on_watch_read) != 0) {
      w->stream = nullptr;
      close_own_stream(w->owner, stream);
    }
    return;
  }
  if (refused) {
    // Nothing listens at the member's address: its process is gone.
    w->dials_left = 0;
    w->gone(w->id);
    return;
  }
  redial(w);  // answered by something else, timed out, or reset mid-way: try again, a few times
}

void unwatch(impl* p) {
  watch_state* w = std::exchange(p->watch, nullptr);
  if (w == nullptr) return;
  w->ended = true;
  if (w->stream != nullptr) close_own_stream(p, std::exchange(w->stream, nullptr));
  if (w->dialing != nullptr) {
    cancel(w->dialing);  // its finish frees w
    return;
  }
  delete w;
}

void on_listener_closed(uv_handle_t* h) {
  auto* p = static_cast<impl*>(h->data);
  p->listener_open = false;
  maybe_closed(p);
}

// Ends a connect on its way: it finishes with failure(o) once its pending callback has run.
void cancel(outgoing* o) {
  if (o->canceled) return;  // a watch's dial is cancelled by unwatch, then by the close
  o->canceled = true;
  if (o->at == outgoing::stage::resolving) {
    uv_cancel(reinterpret_cast<uv_req_t*>(&o->gai));  // else its callback sees `canceled`
  } else if (!o->stream_closing) {
    // A connect or write in flight completes with UV_ECANCELED, which finishes it; a read
    // awaiting the answer just stops, so it is finished here.
    o->stream_closing = true;
    uv_close(reinterpret_cast<uv_handle_t*>(o->stream), free_handle);
    if (o->reading) finish(o, failure(o));
  }
}

// Every second: connections that have not introduced themselves in time are closed (a dial is
// timed from its connect on: a name lookup cannot be cut short).
void sweep(uv_timer_t* timer) {
  auto* p = static_cast<impl*>(timer->data);
  const uint64_t now = uv_now(p->loop);
  for (incoming* c : std::set<incoming*>(p->in)) {
    if (now - c->since >= k_introduction_ms) drop_incoming(c);
  }
  for (outgoing* o : std::set<outgoing*>(p->out)) {
    if (o->at != outgoing::stage::resolving && !o->canceled &&
        now - o->since >= k_introduction_ms) {
      o->timed_out = true;
      cancel(o);
    }
  }
}

void on_sweeper_closed(uv_handle_t* h) {
  auto* p = static_cast<impl*>(h->data);
  p->sweeper_open = false;
  maybe_closed(p);
}

void do_close(raft_uv_transport* t, raft_uv_transport_close_cb cb) {
  impl* p = of(t);
  p->closing = true;
  p->close_cb = cb;
  unwatch(p);
  for (held* h : std::set<held*>(p->held_open)) drop_held(h);
  p->links.close_all();
  if (p->listener_open) uv_close(reinterpret_cast<uv_handle_t*>(&p->listener), on_listener_closed);
  if (p->sweeper_open) uv_close(reinterpret_cast<uv_handle_t*>(&p->sweeper), on_sweeper_closed);
  for (incoming* c : std::set<incoming*>(p->in)) drop_incoming(c);
  for (outgoing* o : std::set<outgoing*>(p->out)) cancel(o);
  maybe_closed(p);
}

}  // namespace

int transport_init(raft_uv_transport* t, uv_loop_t* loop, const std::string& listen,
                   uint64_t incarnation, transport_hooks hooks, tls_files tls) {
  auto* p = new impl();
  p->t = t;
  p->loop = loop;
  p->listen = listen;
  p->incarnation = incarnation;
  p->hooks = std::move(hooks);
  p->tls = std::move(tls);
  t->impl = p;
  t->init = do_init;
  t->listen = do_listen;
  t->connect = do_connect;
  t->close = do_close;
  return 0;
}

void transport_watch(raft_uv_transport* t, uint64_t id, const std::string& address,
                     std::function<void(uint64_t id)> gone) {
  impl* p = of(t);
  unwatch(p);
  if (p->closing) return;
  auto* w = new watch_state();
  w->owner = p;
  w->id = id;
  w->address = address;
  w->gone = std::move(gone);
  p->watch = w;
  redial(w);
}

void transport_unwatch(raft_uv_transport* t) { unwatch(of(t)); }

void transport_probe(raft_uv_transport* t, uint64_t id, const std::string& address,
                     std::function<void(const probe_answer&)> done) {
  impl* p = of(t);
  int rv = 0;
  outgoing* o = p->closing ? nullptr : dial(p, id, address, k_probe_magic, &rv);
  if (o == nullptr) return done(probe_answer{.id = id});
  o->reply_size = k_probe_reply;
  o->then = [p, done = std::move(done)](uv_stream_t* stream, const outgoing& dialled) {
    probe_answer a{.id = dialled.id};
    if (stream != nullptr) {
      close_own_stream(p, stream);
      a = dialled.answer;
      a.id = dialled.id;
      a.answered = true;
    }
    done(a);
  };
}

void transport_close(raft_uv_transport* t) {
  delete of(t);
  t->impl = nullptr;
}

}  // namespace shoal::service::replica
