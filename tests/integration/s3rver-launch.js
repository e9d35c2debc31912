// tests/integration/s3rver-launch.js - start @20minutes/s3rver for s3.sh.
//
//   node s3rver-launch.js MODULE_DIR DATA_DIR PORT BUCKET...
//
// MODULE_DIR is the folder npm installed @20minutes/s3rver into (it ships no
// command line of its own). Listens on 127.0.0.1 only; PORT 0 takes a free
// one. Prints "listening 127.0.0.1:PORT" once it serves, nothing else: the
// server's own request log is off. With S3RVER_REQLOG=FILE every request is
// appended to FILE when its response ends, one line each:
//   METHOD RAW-URL STATUS cl=CONTENT-LENGTH te=TRANSFER-ENCODING done=0|1
// (done=0: the connection closed before the response was complete), so the
// tests can tell a single PUT from a multipart upload, count its parts and
// see an AbortMultipartUpload, which this server answers 405. Exits 0 on SIGTERM/SIGINT, 1 on a
// start-up error. Credentials are the server's defaults, S3RVER / S3RVER,
// and every request signed with SigV4 is checked (wrong secret: 403).
'use strict';

const fs = require('fs');
const path = require('path');

const [moduleDir, dataDir, port, ...buckets] = process.argv.slice(2);
if (!moduleDir || !dataDir || port === undefined || buckets.length === 0) {
    console.error('usage: s3rver-launch.js MODULE_DIR DATA_DIR PORT BUCKET...');
    process.exit(2);
}

const S3rver = require(require.resolve('@20minutes/s3rver',
                                       { paths: [path.resolve(moduleDir)] }));
const server = new S3rver({
    address: '127.0.0.1',
    port: Number(port),
    directory: path.resolve(dataDir),
    silent: true,
    // the gateway is configured path-style (path_style = yes)
    vhostBuckets: false,
    configureBuckets: buckets.map((name) => ({ name })),
});

const reqlog = process.env.S3RVER_REQLOG;
if (reqlog) {
    // first in the chain, and logged on 'close' so that error answers (set
    // by the server's onerror, outside the middleware) are seen too
    server.middleware.unshift((ctx, next) => {
        const h = ctx.req.headers;
        ctx.res.on('close', () => {
            fs.appendFileSync(reqlog, `${ctx.method} ${ctx.originalUrl} ${ctx.res.statusCode}` +
                ` cl=${h['content-length'] || '-'} te=${h['transfer-encoding'] || '-'}` +
                ` done=${ctx.res.writableFinished ? 1 : 0}` +
                ` mac=${h['x-tftp-client-mac'] || '-'}\n`);
        });
        return next();
    });
}

server.run((err, addr) => {
    if (err) {
        console.error(`s3rver: ${err.message || err}`);
        process.exit(1);
    }
    console.log(`listening ${addr.address}:${addr.port}`);
});

function stop() {
    server.close(() => process.exit(0));
    // a client holding a keep-alive connection must not keep us alive
    setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
