#include "service/replica/tls_link.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <set>

#include "absl/strings/str_cat.h"

namespace shoal::service::replica {
namespace {

constexpr std::size_t k_max_queued = 4 << 20;  // bytes waiting to be written, per direction
constexpr std::size_t k_chunk = 64 << 10;

bool is_ip(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

// OpenSSL's reason for the last failure on this thread, then its queue emptied.
std::string openssl_reason(const char* fallback) {
  const unsigned long e = ERR_peek_last_error();
  const char* reason = e != 0 ? ERR_reason_error_string(e) : nullptr;
  ERR_clear_error();
  return reason != nullptr ? reason : fallback;
}

struct ctx_free {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
using ctx_ptr = std::unique_ptr<SSL_CTX, ctx_free>;

absl::Status refuse_file(const char* setting, const std::string& path, const char* what) {
  ERR_clear_error();
  return absl::FailedPreconditionError(absl::StrCat("startup.", setting, ": ", path, " ", what));
}

// One context per connection: the files as they are now.
absl::StatusOr<ctx_ptr> make_context(const tls_files& f) {
  ctx_ptr ctx(SSL_CTX_new(TLS_method()));
  if (!ctx) return absl::InternalError("OpenSSL could not make a TLS context");
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), f.cert.c_str()) != 1) {
    return refuse_file("raft_tls_cert_file", f.cert, "is not a readable PEM certificate chain");
  }
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), f.key.c_str(), SSL_FILETYPE_PEM) != 1) {
    return refuse_file("raft_tls_key_file", f.key, "is not a readable, unencrypted PEM key");
  }
  if (SSL_CTX_check_private_key(ctx.get()) != 1) {
    return refuse_file("raft_tls_key_file", f.key, "is not the key of the certificate");
  }
  if (SSL_CTX_load_verify_locations(ctx.get(), f.ca.c_str(), nullptr) != 1) {
    return refuse_file("raft_tls_ca_file", f.ca, "is not a readable PEM file of CA certificates");
  }
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  return ctx;
}

// ---- the link -------------------------------------------------------------------------------

struct link;

struct write_req {
  uv_write_t req{};
  link* owner = nullptr;
  std::string bytes;
};

struct link {
  tls_links* set = nullptr;    // the transport's: closing it ends this link
  uv_tcp_t* tcp = nullptr;     // the peer's side: TLS records (raft_malloc'd, freed here)
  uv_pipe_t* local = nullptr;  // this link's end of the pair: plaintext
  SSL* ssl = nullptr;
  BIO* from_net = nullptr;  // records read from the peer, for OpenSSL
  BIO* to_net = nullptr;    // records OpenSSL made, for the peer
  std::shared_ptr<peer_certificate> peer = std::make_shared<peer_certificate>();
  std::function<void(const std::string&)> refused;
  std::string plain_out;  // plaintext from Raft's side that OpenSSL has not taken yet
  bool handshaken = false;
  // Plaintext came from the peer: with TLS 1.3 a dialler's handshake ends before the peer has
  // checked its certificate, so a refusal is one that comes before the peer's first byte.
  bool heard = false;
  bool closing = false;
  bool reading_net = false;
  bool reading_local = false;
  int open_handles = 2;
  char scratch[k_chunk];
};

void on_handle_closed(uv_handle_t* h) {
  auto* l = static_cast<link*>(h->data);
  if (h == reinterpret_cast<uv_handle_t*>(l->tcp)) {
    raft_free(h);
  } else {
    delete reinterpret_cast<uv_pipe_t*>(h);
  }
  if (--l->open_handles == 0) {
    SSL_free(l->ssl);  // frees both BIOs
    delete l;
  }
}

// Closes both sides at once. libuv writes what it can when a write is made, so the last records
// (a close_notify, or the alert that says why) are with the kernel already, which sends them
// after the close; only bytes a stalled peer left queued are dropped — never waited for, so a
// frozen peer cannot keep the link (and the loop) alive.
void close_link(link* l) {
  if (l->closing) return;
  l->closing = true;
  l->set->live.erase(l);
  uv_close(reinterpret_cast<uv_handle_t*>(l->local), on_handle_closed);
  uv_close(reinterpret_cast<uv_handle_t*>(l->tcp), on_handle_closed);
}

void send(link* l, uv_stream_t* to, std::string bytes);
void update_flow(link* l);

// What OpenSSL queued for the peer, written to the TCP connection.
void flush_net(link* l) {
  while (BIO_ctrl_pending(l->to_net) > 0) {
    std::string out(std::min<std::size_t>(BIO_ctrl_pending(l->to_net), k_chunk), '\0');
    const int n = BIO_read(l->to_net, out.data(), static_cast<int>(out.size()));
    if (n <= 0) break;
    out.resize(static_cast<std::size_t>(n));
    send(l, reinterpret_cast<uv_stream_t*>(l->tcp), std::move(out));
    if (l->closing) return;  // the write failed at once and closed the link
  }
}

void fail(link* l, const std::string& why) {
  if (l->closing) return;
  auto refused = std::move(l->refused);  // at most once, even if the flush fails again
  l->refused = nullptr;
  flush_net(l);
  if (!l->heard && refused) refused(why);
  close_link(l);
}

// Why the handshake failed, for a person: the certificate check's verdict when there is one.
std::string handshake_failure(link* l) {
  const long verdict = SSL_get_verify_result(l->ssl);
  if (verdict != X509_V_OK) {
    ERR_clear_error();
    return absl::StrCat("the peer's certificate was refused: ",
                        X509_verify_cert_error_string(verdict));
  }
  return absl::StrCat("the TLS handshake failed: ", openssl_reason("the peer closed it"));
}

// Moves whatever can move: the handshake, plaintext into TLS, records out of it.
void pump(link* l) {
  if (l->closing) return;
  ERR_clear_error();  // SSL_get_error reads the thread's queue: nothing stale may be in it
  if (!l->handshaken) {
    const int r = SSL_do_handshake(l->ssl);
    if (r == 1) {
      l->handshaken = true;
      l->peer->set(SSL_get0_peer_certificate(l->ssl));
    } else {
      const int e = SSL_get_error(l->ssl, r);
      if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
        return fail(l, handshake_failure(l));
      }
    }
  }
  if (l->handshaken) {
    if (!l->plain_out.empty()) {
      // A memory BIO takes everything: a full write, or a failure.
      const int size = static_cast<int>(std::min<std::size_t>(l->plain_out.size(), INT_MAX));
      const int n = SSL_write(l->ssl, l->plain_out.data(), size);
      if (n <= 0) return fail(l, openssl_reason("a TLS write failed"));
      l->plain_out.erase(0, static_cast<std::size_t>(n));
    }
    for (;;) {
      const int n = SSL_read(l->ssl, l->scratch, sizeof l->scratch);
      if (n > 0) {
        l->heard = true;
        send(l, reinterpret_cast<uv_stream_t*>(l->local),
             std::string(l->scratch, static_cast<std::size_t>(n)));
        if (l->closing) return;  // the write failed at once and closed the link
        continue;
      }
      const int e = SSL_get_error(l->ssl, n);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
      flush_net(l);
      if (e == SSL_ERROR_ZERO_RETURN) return close_link(l);  // the peer's close_notify
      return fail(l, openssl_reason("a TLS read failed"));
    }
  }
  flush_net(l);
  if (!l->closing) update_flow(l);
}

void alloc_scratch(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto* l = static_cast<link*>(h->data);
  *buf = uv_buf_init(l->scratch, sizeof l->scratch);
}

void on_net_read(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
  auto* l = static_cast<link*>(s->data);
  if (n < 0) {
    if (!l->heard) return fail(l, "the peer closed the connection during the TLS handshake");
    return close_link(l);
  }
  if (n > 0) BIO_write(l->from_net, buf->base, static_cast<int>(n));
  pump(l);
}

void on_local_read(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
  auto* l = static_cast<link*>(s->data);
  if (n < 0) {  // Raft's side closed: a close_notify to the peer, then the end
    if (l->handshaken) {
      SSL_shutdown(l->ssl);
      flush_net(l);
    }
    return close_link(l);
  }
  l->plain_out.append(buf->base, static_cast<std::size_t>(n));
  pump(l);
}

// Each side reads only while the other side's writes are under the bound.
void update_flow(link* l) {
  if (l->closing) return;
  auto* tcp = reinterpret_cast<uv_stream_t*>(l->tcp);
  auto* local = reinterpret_cast<uv_stream_t*>(l->local);
  const bool net_ok = local->write_queue_size <= k_max_queued;
  const bool local_ok = tcp->write_queue_size + l->plain_out.size() <= k_max_queued;
  if (net_ok != l->reading_net) {
    l->reading_net = net_ok && uv_read_start(tcp, alloc_scratch, on_net_read) == 0;
    if (!net_ok) uv_read_stop(tcp);
  }
  if (local_ok != l->reading_local) {
    l->reading_local = local_ok && uv_read_start(local, alloc_scratch, on_local_read) == 0;
    if (!local_ok) uv_read_stop(local);
  }
}

void send(link* l, uv_stream_t* to, std::string bytes) {
  auto* w = new write_req();
  w->owner = l;
  w->bytes = std::move(bytes);
  w->req.data = w;
  uv_buf_t buf = uv_buf_init(w->bytes.data(), static_cast<unsigned>(w->bytes.size()));
  const int rv = uv_write(&w->req, to, &buf, 1, [](uv_write_t* req, int status) {
    auto* done = static_cast<write_req*>(req->data);
    link* owner = done->owner;
    delete done;
    if (owner->closing) return;  // cancelled by the close, or the last bytes out
    if (status != 0) return fail(owner, "the connection to the peer failed");
    update_flow(owner);
  });
  if (rv != 0) {
    delete w;
    fail(l, "the connection to the peer failed");
  }
}

}  // namespace

absl::Status check_tls_files(const tls_files& files) {
  auto ctx = make_context(files);
  return ctx.ok() ? absl::OkStatus() : ctx.status();
}

peer_certificate::~peer_certificate() { X509_free(cert_); }

void peer_certificate::set(X509* cert) {
  if (cert != nullptr) X509_up_ref(cert);
  X509_free(cert_);
  cert_ = cert;
}

bool peer_certificate::names(const std::string& host) const {
  if (cert_ == nullptr) return false;
  if (is_ip(host)) return X509_check_ip_asc(cert_, host.c_str(), 0) == 1;
  return X509_check_host(cert_, host.data(), host.size(), 0, nullptr) == 1;
}

void tls_links::close_all() {
  for (void* l : std::set<void*>(live)) close_link(static_cast<link*>(l));
}

absl::StatusOr<tls_link> open_tls_link(uv_loop_t* loop, uv_tcp_t* tcp, const tls_files& files,
                                       const std::string& dialled, tls_links* links,
                                       std::function<void(const std::string&)> refused) {
  auto close_tcp = [tcp] {
    uv_close(reinterpret_cast<uv_handle_t*>(tcp), [](uv_handle_t* h) { raft_free(h); });
  };
  auto ctx = make_context(files);
  int fds[2];
  if (!ctx.ok() || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    close_tcp();
    if (!ctx.ok()) return ctx.status();
    return absl::ResourceExhaustedError("no socket pair for a peer connection");
  }
  // The TLS state, failing closed: a dialler that cannot pin the host name does not connect.
  SSL* ssl = SSL_new(ctx->get());  // holds its own reference to the context
  BIO* from_net = BIO_new(BIO_s_mem());
  BIO* to_net = BIO_new(BIO_s_mem());
  bool ok = ssl != nullptr && from_net != nullptr && to_net != nullptr;
  if (ok && !dialled.empty()) {
    ok = is_ip(dialled) ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), dialled.c_str()) == 1
                        : SSL_set1_host(ssl, dialled.c_str()) == 1 &&
                              SSL_set_tlsext_host_name(ssl, dialled.c_str()) == 1;
  }
  if (!ok) {
    SSL_free(ssl);
    BIO_free(from_net);
    BIO_free(to_net);
    ::close(fds[0]);
    ::close(fds[1]);
    close_tcp();
    ERR_clear_error();
    return absl::InternalError("OpenSSL could not set up a peer connection");
  }
  SSL_set_bio(ssl, from_net, to_net);
  if (dialled.empty()) {
    SSL_set_accept_state(ssl);
  } else {
    SSL_set_connect_state(ssl);
  }
  // Dead peers are noticed even while nothing is sent.
  uv_tcp_keepalive(tcp, 1, 30);
  auto* plain = static_cast<uv_pipe_t*>(raft_malloc(sizeof(uv_pipe_t)));
  auto* l = new link();
  l->set = links;
  l->tcp = tcp;
  l->ssl = ssl;
  l->from_net = from_net;
  l->to_net = to_net;
  l->refused = std::move(refused);
  l->local = new uv_pipe_t();
  uv_pipe_init(loop, plain, 0);
  uv_pipe_init(loop, l->local, 0);
  // libuv takes the descriptors (a pipe opened on one closes it with the handle).
  uv_pipe_open(plain, fds[0]);
  uv_pipe_open(l->local, fds[1]);
  tcp->data = l;
  l->local->data = l;
  links->live.insert(l);
  pump(l);  // the dialling side speaks first
  return tls_link{reinterpret_cast<uv_stream_t*>(plain), l->peer};
}

}  // namespace shoal::service::replica
