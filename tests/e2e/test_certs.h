// test_certs: throwaway certificate authorities and certificates for TLS tests, made in-process
// with OpenSSL (P-256 keys: fast to make), written as PEM files.
//
//   test_ca ca("Shoal test CA");
//   pem server = ca.issue({.common_name = "shoald", .sans = {"IP:127.0.0.1", "DNS:localhost"}});
//   pem expired = ca.issue({.common_name = "old", .sans = {}, .not_before = -7200, .not_after =
//   -3600}); write_pem_files(dir, "server", server);    // dir/server.crt, dir/server.key
//   write_file(dir + "/ca.crt", ca.certificate());
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <atomic>
#include <cstdint>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace shoal::testing {

struct pem {
  std::string certificate;
  std::string key;
};

struct cert_options {
  std::string common_name;
  std::vector<std::string> sans;  // "DNS:localhost", "IP:127.0.0.1", "URI:spiffe://..."
  long not_before = -60;          // seconds from now
  long not_after = 3600;          // seconds from now
};

namespace detail {

struct key_free {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct x509_free {
  void operator()(X509* x) const { X509_free(x); }
};
struct bio_free {
  void operator()(BIO* b) const { BIO_free(b); }
};
using key_ptr = std::unique_ptr<EVP_PKEY, key_free>;
using x509_ptr = std::unique_ptr<X509, x509_free>;

inline void check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("test_certs: ") + what);
}

inline key_ptr new_key() {
  key_ptr k(EVP_EC_gen("P-256"));
  check(k != nullptr, "EVP_EC_gen");
  return k;
}

inline std::string to_pem(X509* x) {
  std::unique_ptr<BIO, bio_free> b(BIO_new(BIO_s_mem()));
  check(PEM_write_bio_X509(b.get(), x) == 1, "PEM_write_bio_X509");
  char* data = nullptr;
  const long n = BIO_get_mem_data(b.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

inline std::string to_pem(EVP_PKEY* k) {
  std::unique_ptr<BIO, bio_free> b(BIO_new(BIO_s_mem()));
  check(PEM_write_bio_PrivateKey(b.get(), k, nullptr, nullptr, 0, nullptr, nullptr) == 1,
        "PEM_write_bio_PrivateKey");
  char* data = nullptr;
  const long n = BIO_get_mem_data(b.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

inline void add_extension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  check(ext != nullptr, "X509V3_EXT_conf_nid");
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

inline uint64_t next_serial() {
  static std::atomic<uint64_t> serial{1000};
  return serial.fetch_add(1);
}

// A certificate for `key`, signed by `issuer_key` (and named after `issuer`, or itself).
inline x509_ptr make_cert(const cert_options& o, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key,
                          bool ca) {
  x509_ptr x(X509_new());
  X509_set_version(x.get(), 2);
  ASN1_INTEGER_set_uint64(X509_get_serialNumber(x.get()), next_serial());
  X509_gmtime_adj(X509_getm_notBefore(x.get()), o.not_before);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), o.not_after);
  X509_set_pubkey(x.get(), key);
  X509_NAME* name = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("Shoal tests"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(o.common_name.c_str()), -1, -1,
                             0);
  X509* signer = issuer != nullptr ? issuer : x.get();
  X509_set_issuer_name(x.get(), X509_get_subject_name(signer));
  if (ca) {
    add_extension(x.get(), signer, NID_basic_constraints, "critical,CA:TRUE");
    add_extension(x.get(), signer, NID_key_usage, "critical,keyCertSign,cRLSign");
    add_extension(x.get(), signer, NID_subject_key_identifier, "hash");
  } else {
    add_extension(x.get(), signer, NID_basic_constraints, "critical,CA:FALSE");
    add_extension(x.get(), signer, NID_ext_key_usage, "serverAuth,clientAuth");
    add_extension(x.get(), signer, NID_authority_key_identifier, "keyid");
    std::string sans;
    for (const auto& s : o.sans) sans += (sans.empty() ? "" : ",") + s;
    if (!sans.empty()) add_extension(x.get(), signer, NID_subject_alt_name, sans);
  }
  check(X509_sign(x.get(), issuer_key, EVP_sha256()) > 0, "X509_sign");
  return x;
}

}  // namespace detail

class test_ca {
 public:
  explicit test_ca(const std::string& name) : key_(detail::new_key()) {
    cert_ = detail::make_cert({.common_name = name, .sans = {}, .not_after = 86400}, key_.get(),
                              nullptr, key_.get(), true);
  }
  std::string certificate() const { return detail::to_pem(cert_.get()); }
  pem issue(const cert_options& o) const {
    detail::key_ptr key = detail::new_key();
    detail::x509_ptr cert = detail::make_cert(o, key.get(), cert_.get(), key_.get(), false);
    return {detail::to_pem(cert.get()), detail::to_pem(key.get())};
  }

 private:
  detail::key_ptr key_;
  detail::x509_ptr cert_;
};

// dir/name.crt and dir/name.key.
inline void write_pem_files(const std::string& dir, const std::string& name, const pem& p) {
  std::ofstream(dir + "/" + name + ".crt") << p.certificate;
  std::ofstream(dir + "/" + name + ".key") << p.key;
}

}  // namespace shoal::testing
