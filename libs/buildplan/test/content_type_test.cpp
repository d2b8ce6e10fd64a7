#include "dp/buildplan/content_type.hpp"

#include <gtest/gtest.h>

using namespace dp::buildplan;

TEST(ContentType, KnownExtensions) {
  EXPECT_EQ(content_type("index.html"), "text/html; charset=utf-8");
  EXPECT_EQ(content_type("A/B/PAGE.HTM"), "text/html; charset=utf-8");
  EXPECT_EQ(content_type("assets/index-4f3a9c2b.js"), "text/javascript; charset=utf-8");
  EXPECT_EQ(content_type("x.mjs"), "text/javascript; charset=utf-8");
  EXPECT_EQ(content_type("x.css"), "text/css; charset=utf-8");
  EXPECT_EQ(content_type("x.json"), "application/json; charset=utf-8");
  EXPECT_EQ(content_type("x.js.map"), "application/json; charset=utf-8");
  EXPECT_EQ(content_type("logo.svg"), "image/svg+xml; charset=utf-8");
  EXPECT_EQ(content_type("a.png"), "image/png");
  EXPECT_EQ(content_type("a.JPG"), "image/jpeg");
  EXPECT_EQ(content_type("a.webp"), "image/webp");
  EXPECT_EQ(content_type("a.avif"), "image/avif");
  EXPECT_EQ(content_type("favicon.ico"), "image/x-icon");
  EXPECT_EQ(content_type("f.woff2"), "font/woff2");
  EXPECT_EQ(content_type("f.ttf"), "font/ttf");
  EXPECT_EQ(content_type("robots.txt"), "text/plain; charset=utf-8");
  EXPECT_EQ(content_type("sitemap.xml"), "application/xml; charset=utf-8");
  EXPECT_EQ(content_type("app.wasm"), "application/wasm");
  EXPECT_EQ(content_type("site.webmanifest"), "application/manifest+json; charset=utf-8");
  EXPECT_EQ(content_type("doc.pdf"), "application/pdf");
  EXPECT_EQ(content_type("v.mp4"), "video/mp4");
  EXPECT_EQ(content_type("v.webm"), "video/webm");
}

TEST(ContentType, UnknownIsOctetStream) {
  EXPECT_EQ(content_type("Makefile"), "application/octet-stream");
  EXPECT_EQ(content_type("x.unknownext"), "application/octet-stream");
  EXPECT_EQ(content_type("dir.d/noext"), "application/octet-stream");
  EXPECT_EQ(content_type("x.averyveryverylongextension"), "application/octet-stream");
  EXPECT_EQ(content_type("trailingdot."), "application/octet-stream");
}

TEST(CacheControl, FingerprintedAssetsAreImmutable) {
  for (const char* p : {
           "assets/index-4f3a9c2b.js",         // Vite, hex-looking
           "assets/index-BqXx1t_a.js",         // Vite base64url
           "assets/vendor-C-Tq2Ls9.js",        // hash containing '-'
           "assets/index-BqXxtIaa.css",        // letters only, many capitals
           "static/js/main.3e1f9a7c.js",       // CRA
           "static/css/main.3e1f9a7c.css",     // CRA
           "static/js/787.3c1f9a7c.chunk.js",  // CRA chunk
           "static/media/logo.6ce24c58023cc2f8fd88fe9d219db6c6.svg",
           "_next/static/chunks/pages/_app-3e1f9a7c3e1f9a7c.js",  // Next
           "_next/static/Ab12Cd34/_buildManifest.js",             // Next build id directory
           "_nuxt/BqXx1t_a.js",          // Nuxt: the whole name is the hash
           "_astro/index.D_3nfkLW.css",  // Astro
       }) {
    EXPECT_TRUE(is_fingerprinted(p)) << p;
    EXPECT_EQ(cache_control(p), cache_immutable) << p;
  }
}

TEST(CacheControl, EverythingElseRevalidates) {
  for (const char* p : {
           "index.html",
           "about-us.html",
           "assets/index-4f3a9c2b.html",
           "favicon.ico",
           "robots.txt",
           "jquery-3.7.1.min.js",
           "bundle.min.js",
           "logo-blackbox.svg",
           "app-MyWidget.js",
           "version2.js",
           "about_us.css",
           "report-20240101.pdf",
           "Roboto-Regular.woff2",
           "OpenSans-BoldItalic.ttf",
           "favicon-32x32.png",
           "icon-arrow-up.svg",
           "manifest.json",
           ".htaccess",
           "README",
       }) {
    EXPECT_FALSE(is_fingerprinted(p)) << p;
    EXPECT_EQ(cache_control(p), cache_revalidate) << p;
  }
}
