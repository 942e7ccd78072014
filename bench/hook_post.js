// The Node.js reference for bench/hooks.sh: what a hook script written in Node does to deliver a
// hook call: read the payload on stdin, POST it to the hook receiver, exit on the answer.
// usage: node bench/hook_post.js PORT < payload.json
const http = require('http');
const chunks = [];
process.stdin.on('data', (c) => chunks.push(c));
process.stdin.on('end', () => {
  const data = Buffer.concat(chunks);
  const req = http.request({
    host: '127.0.0.1', port: Number(process.argv[2]), path: '/hook/codex', method: 'POST',
    timeout: 100, headers: { 'content-type': 'application/json', 'content-length': data.length },
  }, () => process.exit(0));
  req.on('error', () => process.exit(0));
  req.on('timeout', () => { req.destroy(); process.exit(0); });
  req.end(data);
});
