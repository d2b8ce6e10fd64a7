// A certificate authority of the test's own, made with the openssl CLI (req, ca), and its OCSP
// responder: `openssl ocsp` answering from the CA's index, signed by a delegated responder
// certificate (OCSPSigning), either for one request file (respond) or as a server on a loopback
// port (ocsp_responder).
#pragma once

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "dp/test/certificates.hpp"
#include "dp/test/harness.hpp"

namespace dp::test {

class test_ca {
 public:
  // Makes the CA (P-256, CN=<name>) and its responder certificate in `dir`. Leaves it issues
  // with an OCSP URL name `ocsp_url` in their AIA.
  test_ca(std::filesystem::path dir, const std::string& name, std::string ocsp_url)
      : dir_(std::move(dir)), ocsp_url_(std::move(ocsp_url)) {
    std::filesystem::create_directories(dir_ / "issued");
    std::ofstream(dir_ / "index.txt").close();
    std::ofstream(dir_ / "serial") << "1000\n";
    write_config();
    openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", path("ca.key"), "-out", path("ca.crt"), "-days", "30", "-subj",
             "/CN=" + name, "-addext", "basicConstraints=critical,CA:TRUE", "-addext",
             "keyUsage=critical,keyCertSign,cRLSign"});
    sign("responder", {name + " OCSP"}, "responder");
  }

  const std::filesystem::path& dir() const noexcept { return dir_; }
  std::filesystem::path cert_file() const { return dir_ / "ca.crt"; }

  // A leaf for `names` (CN = the first), chain = leaf + this CA; with_ocsp_url false leaves the
  // AIA out.
  pem_pair issue(const std::string& stem, const std::vector<std::string>& names,
                 bool with_ocsp_url = true) {
    sign(stem, names, with_ocsp_url ? "leaf_ocsp" : "leaf_plain");
    pem_pair p{.chain_file = dir_ / (stem + ".chain"), .key_file = dir_ / (stem + ".key")};
    p.chain_pem = slurp(dir_ / (stem + ".crt")) + slurp(cert_file());
    std::ofstream(p.chain_file) << p.chain_pem;
    p.key_pem = slurp(p.key_file);
    return p;
  }

  void revoke(const std::string& stem) {
    openssl({"ca", "-config", path("ca.cnf"), "-revoke", path(stem + ".crt")});
  }

  // The responder's DER answer to a DER request. `minutes` > 0 sets nextUpdate that far after
  // thisUpdate; 0 leaves nextUpdate out. `signer` answers instead of this CA's responder (a
  // responder of another CA: a response the leaf's issuer did not authorize).
  std::string respond(const std::string& request_der, int minutes = 60,
                      const test_ca* signer = nullptr) const {
    const test_ca& s = signer ? *signer : *this;
    auto req = dir_ / "request.der";
    auto resp = dir_ / "response.der";
    std::ofstream(req, std::ios::binary) << request_der;
    std::vector<std::string> args{"ocsp",
                                  "-index",
                                  path("index.txt"),
                                  "-CA",
                                  path("ca.crt"),
                                  "-rsigner",
                                  s.path("responder.crt"),
                                  "-rkey",
                                  s.path("responder.key"),
                                  "-reqin",
                                  req.string(),
                                  "-respout",
                                  resp.string()};
    if (minutes > 0) {
      args.insert(args.end(), {"-nmin", std::to_string(minutes)});
    }
    openssl(args);
    return slurp(resp);
  }

  // `openssl ocsp` as a server on `port`, answering for this CA's index (OpenSSL 3.0 takes no
  // address: it listens on every interface; the tests only connect over loopback).
  std::unique_ptr<child_process> serve(std::uint16_t port) const {
    auto p = std::make_unique<child_process>(process_options{
        .argv = {"openssl", "ocsp", "-index", path("index.txt"), "-CA", path("ca.crt"), "-rsigner",
                 path("responder.crt"), "-rkey", path("responder.key"), "-port",
                 std::to_string(port), "-nmin", "60", "-ignore_err"}});
    // Not wait_for_tcp: OpenSSL 3.0's responder hangs on a connection that closes unasked.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (p->log_text().find("waiting for OCSP client connections") == std::string::npos) {
      if (!p->running() || std::chrono::steady_clock::now() > deadline) {
        throw std::runtime_error("openssl ocsp did not listen: " + p->log_text());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return p;
  }

 private:
  std::string path(const std::string& f) const { return (dir_ / f).string(); }

  static std::string slurp(const std::filesystem::path& f) {
    std::ifstream in(f, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  static void openssl(std::vector<std::string> args) {
    args.insert(args.begin(), "openssl");
    auto r = run(args);
    if (r.exit_code != 0) {
      throw std::runtime_error("openssl " + args[1] + " failed: " + r.output);
    }
  }

  void sign(const std::string& stem, const std::vector<std::string>& names,
            const std::string& extensions) {
    std::string san;
    for (const auto& n : names) {
      san += (san.empty() ? "DNS:" : ",DNS:") + n;
    }
    openssl({"req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", path(stem + ".key"), "-out", path(stem + ".csr"), "-subj",
             "/CN=" + names.front(), "-addext", "subjectAltName=" + san});
    openssl({"ca", "-config", path("ca.cnf"), "-batch", "-notext", "-days", "20", "-extensions",
             extensions, "-in", path(stem + ".csr"), "-out", path(stem + ".crt")});
  }

  void write_config() const {
    std::ofstream(dir_ / "ca.cnf")
        << "[ca]\ndefault_ca = test_ca\n"
           "[test_ca]\n"
           "database = "
        << path("index.txt") << "\nnew_certs_dir = " << path("issued")
        << "\ncertificate = " << path("ca.crt") << "\nprivate_key = " << path("ca.key")
        << "\nserial = " << path("serial")
        << "\ndefault_md = sha256\npolicy = any\nunique_subject = no\n"
           "copy_extensions = copy\n"
           "[any]\ncommonName = supplied\n"
           "[leaf_ocsp]\nbasicConstraints = CA:FALSE\n"
           "keyUsage = digitalSignature\n"
           "extendedKeyUsage = serverAuth\n"
           "authorityInfoAccess = OCSP;URI:"
        << ocsp_url_
        << "\n[leaf_plain]\nbasicConstraints = CA:FALSE\n"
           "keyUsage = digitalSignature\n"
           "extendedKeyUsage = serverAuth\n"
           "[responder]\nbasicConstraints = CA:FALSE\n"
           "keyUsage = digitalSignature\n"
           "extendedKeyUsage = OCSPSigning\n";
  }

  std::filesystem::path dir_;
  std::string ocsp_url_;
};

}  // namespace dp::test
