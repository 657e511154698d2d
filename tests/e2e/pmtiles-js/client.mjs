// protomaps' PMTiles reader (npm `pmtiles`, as MapLibre's pmtiles:// protocol uses it)
// reading an archive through the gateway's range mode. Prints JSON: the header's zooms,
// each asked tile as hex (null: not in the archive), or its error.
//   node client.mjs URL TOKEN z/x/y...
import { FetchSource, PMTiles } from "pmtiles";

const [url, token, ...tiles] = process.argv.slice(2);
const source = new FetchSource(url, new Headers({ Authorization: `Bearer ${token}` }));
const archive = new PMTiles(source);
const out = { tiles: {}, errors: {} };
const header = await archive.getHeader();
out.minZoom = header.minZoom;
out.maxZoom = header.maxZoom;
out.tileType = header.tileType;
for (const t of tiles) {
  const [z, x, y] = t.split("/").map(Number);
  try {
    const r = await archive.getZxy(z, x, y);
    out.tiles[t] = r ? Buffer.from(r.data).toString("hex") : null;
  } catch (e) {
    out.errors[t] = String(e && e.message ? e.message : e);
  }
}
console.log(JSON.stringify(out));
