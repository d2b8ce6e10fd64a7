// The original design's s3-reverse-proxy, kept as a benchmark anchor: the first label of the
// Host names a folder under BASE_PATH, "/" becomes index.html, everything is proxied to S3.
const express = require('express');
const httpProxy = require('http-proxy');

const app = express();
const PORT = Number(process.env.PORT || 8000);
const BASE_PATH = process.env.BASE_PATH; // e.g. http://127.0.0.1:4569/bucket/__outputs

const proxy = httpProxy.createProxy();

app.use((req, res) => {
  const subdomain = req.hostname.split('.')[0];
  const resolvesTo = `${BASE_PATH}/${subdomain}`;
  return proxy.web(req, res, { target: resolvesTo, changeOrigin: true });
});

proxy.on('proxyReq', (proxyReq, req) => {
  if (req.url === '/') {
    proxyReq.path += 'index.html';
  }
});

app.listen(PORT, '127.0.0.1', () => console.log(`anchor proxy on ${PORT}`));
