// tls_link: one replica-to-replica connection under mutual TLS, carried for Raft as a plain
// stream.
//
// What: libraft reads and writes a uv_stream_t and knows nothing of TLS. A link takes a connected
// TCP handle (the encrypted side, towards the peer) and a Unix socket pair: one end of the pair
// is handed out as an ordinary stream (`plain`: the transport introduces itself on it, then gives
// it to Raft), and the link moves bytes between the other end and the TCP connection through
// OpenSSL's memory BIOs, on the loop thread. Both sides present a certificate and verify the
// other's against the peers' CA (TLS 1.2 at least; no certificate, no connection). The dialling
// side also checks that the certificate names the host it dialled; the accepting side keeps the
// peer's certificate, so that the transport can check it names the member the peer claims to be.
//
// When: transport.cc, for every connection between replicas once startup.raft_tls_ca_file is set.
//
//   tls_files files{.cert = "tls.crt", .key = "tls.key", .ca = "peers-ca.crt"};
//   if (auto st = check_tls_files(files); !st.ok()) return st;       // once, at start
//   tls_links links;                      // the transport's
//   auto link = open_tls_link(loop, tcp, files, /*dialled=*/"shoal-1.shoal", &links,
//                             [](const std::string& why) { /* refused: log it */ });
//   if (!link.ok()) ...;                  // the files could not be read: tcp is closed
//   uv_read_start(link->plain, ...);      // plaintext; closing `plain` ends the link
//   link->peer->names("shoal-1.shoal");   // once bytes arrived on `plain` (after the handshake)
//
// Lifetime: the link owns the TCP handle from the call on. Whoever holds `plain` (the transport,
// then Raft) closes it, which ends the link; a link that fails (a refused certificate, the peer
// gone: TCP keepalive finds a silent one) closes its own end, which `plain` reads as the end of
// the stream; closing the transport closes every link it opened. `plain` is allocated
// with raft_malloc, as Raft frees the streams it is handed. The files are read for every
// connection: a certificate replaced on disk serves the next one.
//
// Flow control: each direction stops reading while more than 4 MiB wait to be written on the
// other side, so a stalled peer holds at most that much per link.
#pragma once

#include <openssl/types.h>

#include <functional>
#include <memory>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "service/replica/raft_c.h"

namespace shoal::service::replica {

struct tls_files {
  std::string cert;  // PEM chain this replica presents, to peers it dials and peers that dial it
  std::string key;   // its unencrypted PEM key
  std::string ca;    // PEM CAs a peer's certificate must chain to
  bool on() const { return !ca.empty(); }
};

// The three files load and the key is the certificate's; else FAILED_PRECONDITION naming the
// setting (startup.raft_tls_*) and the path, never the contents.
absl::Status check_tls_files(const tls_files& files);

// The certificate a peer presented, once the handshake is done (loop thread only).
class peer_certificate {
 public:
  peer_certificate() = default;
  peer_certificate(const peer_certificate&) = delete;
  peer_certificate& operator=(const peer_certificate&) = delete;
  ~peer_certificate();
  // Whether it names `host` (a DNS name or an IP address), as a client checks a server's.
  bool names(const std::string& host) const;
  void set(X509* cert);  // takes a reference

 private:
  X509* cert_ = nullptr;
};

struct tls_link {
  uv_stream_t* plain = nullptr;
  std::shared_ptr<const peer_certificate> peer;
};

// The links one transport has open (loop thread only): closing the transport closes them, so
// that a link whose peer stalled cannot keep the loop alive.
struct tls_links {
  std::set<void*> live;
  void close_all();
};

// `dialled`: the host this side connected to (the peer's certificate must name it); empty on the
// accepting side. `refused` is called at most once, with why, if the link fails before the
// peer's first plaintext byte (a refused certificate, either way), not when it ends afterwards.
// The link joins `links` until it closes.
absl::StatusOr<tls_link> open_tls_link(uv_loop_t* loop, uv_tcp_t* tcp, const tls_files& files,
                                       const std::string& dialled, tls_links* links,
                                       std::function<void(const std::string&)> refused);

}  // namespace shoal::service::replica
