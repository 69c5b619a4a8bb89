// Creates containers on an Azurite blob endpoint, signed with the emulator's Shared Key.
// Usage: node -e "$(cat azurite_setup.js)" -- http://127.0.0.1:PORT ACCOUNT KEY CONTAINER...
// (with -e, process.argv is [node, ...arguments]).
const crypto = require("crypto");
const http = require("http");
const [endpoint, account, key, ...containers] = process.argv.slice(1);
const version = "2021-08-06";

function create(container) {
  return new Promise((resolve, reject) => {
    const date = new Date().toUTCString();
    const path = `/${account}/${container}`;
    const toSign = [
      "PUT", "", "", "", "", "", "", "", "", "", "", "",
      `x-ms-date:${date}\nx-ms-version:${version}`,
      `/${account}${path}\nrestype:container`,
    ].join("\n");
    const signature = crypto
      .createHmac("sha256", Buffer.from(key, "base64"))
      .update(toSign, "utf8")
      .digest("base64");
    const url = new URL(`${endpoint}${path}?restype=container`);
    const request = http.request(url, {
      method: "PUT",
      headers: {
        "x-ms-date": date,
        "x-ms-version": version,
        "Content-Length": 0,
        Authorization: `SharedKey ${account}:${signature}`,
      },
    }, (response) => {
      let body = "";
      response.on("data", (chunk) => (body += chunk));
      response.on("end", () =>
        response.statusCode === 201
          ? resolve()
          : reject(new Error(`creating ${container}: ${response.statusCode} ${body}`)));
    });
    request.on("error", reject);
    request.end();
  });
}

(async () => {
  for (const container of containers) await create(container);
})().catch((e) => {
  console.error(e.message);
  process.exit(1);
});
