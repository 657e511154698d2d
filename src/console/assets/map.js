// tilegate console: a small Web Mercator tile map on a <canvas> (no library, nothing
// fetched from another origin). It draws a base (the gateway's own raster tiles when
// the signed-in token can view a layer, else Natural Earth 1:110m land shipped in the
// binary), the caller's own fence (dashed), and the fence being drawn: tiles picked at
// one zoom by clicking or by dragging a rectangle, or from pasted GeoJSON / a bbox.
"use strict";

(function () {
  const TILE = 256;
  const MAX_LAT = 85.0511287798066;

  /** lon/lat (degrees) → world coordinates in [0, 1] (Web Mercator, y down). */
  function project(lon, lat) {
    const l = Math.max(-MAX_LAT, Math.min(MAX_LAT, lat)) * Math.PI / 180;
    return [(lon + 180) / 360, (1 - Math.log(Math.tan(l) + 1 / Math.cos(l)) / Math.PI) / 2];
  }

  /** Decodes the TopoJSON land object into rings of world coordinates. */
  function decodeLand(topo) {
    const [sx, sy] = topo.transform.scale;
    const [tx, ty] = topo.transform.translate;
    const arcs = topo.arcs.map((arc) => {
      let x = 0, y = 0;
      return arc.map(([dx, dy]) => { x += dx; y += dy; return project(x * sx + tx, y * sy + ty); });
    });
    const ring = (indexes) => {
      const out = [];
      for (const i of indexes) {
        const a = i < 0 ? arcs[~i].slice().reverse() : arcs[i];
        out.push(...(out.length ? a.slice(1) : a));
      }
      return out;
    };
    const rings = [];
    const add = (g) => {
      if (g.type === "GeometryCollection") g.geometries.forEach(add);
      else if (g.type === "Polygon") g.arcs.forEach((r) => rings.push(ring(r)));
      else if (g.type === "MultiPolygon") g.arcs.forEach((p) => p.forEach((r) => rings.push(ring(r))));
    };
    Object.values(topo.objects).forEach(add);
    return rings;
  }

  let landPromise = null;
  function loadLand() {
    if (!landPromise) {
      landPromise = fetch("land-110m.json", { credentials: "omit" })
        .then((r) => (r.ok ? r.json() : null))
        .then((t) => (t ? decodeLand(t) : []))
        .catch(() => []);
    }
    return landPromise;
  }

  const key = (z, x, y) => z + "/" + x + "/" + y;

  /** True when (px, py) is inside the ring (world coordinates, even-odd). */
  function inRing(px, py, ring) {
    let inside = false;
    for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
      const [xi, yi] = ring[i], [xj, yj] = ring[j];
      if ((yi > py) !== (yj > py) && px < (xj - xi) * (py - yi) / (yj - yi) + xi) inside = !inside;
    }
    return inside;
  }

  class TileMap {
    constructor(canvas, options) {
      const opts = options || {};
      this.canvas = canvas;
      this.ctx = canvas.getContext("2d");
      this.zoom = opts.zoom == null ? 1 : opts.zoom;
      this.cx = 0.5;
      this.cy = 0.45;
      this.selected = new Map();
      this.limit = [];
      this.pickZoom = 2;
      this.mode = "toggle";
      this.readOnly = !!opts.readOnly;
      this.onChange = opts.onChange || function () {};
      this.land = [];
      this.base = null; // (z, x, y) => Promise<ImageBitmap | null>
      this.tiles = new Map();
      this.drag = null;
      this.rect = null;
      this.fitCanvas();
      loadLand().then((rings) => { this.land = rings; this.draw(); });
      canvas.addEventListener("pointerdown", (e) => this.down(e));
      canvas.addEventListener("pointermove", (e) => this.move(e));
      canvas.addEventListener("pointerup", (e) => this.up(e));
      canvas.addEventListener("wheel", (e) => { e.preventDefault(); this.zoomAt(e.deltaY < 0 ? 1 : -1, this.point(e)); }, { passive: false });
      this.draw();
    }

    /** Sizes the drawing buffer to the displayed size (call when the map becomes visible). */
    fitCanvas() {
      const w = Math.round(this.canvas.clientWidth);
      if (w > 0 && w !== this.canvas.width) {
        const ratio = this.canvas.height / this.canvas.width;
        this.canvas.width = w;
        this.canvas.height = Math.round(w * ratio);
        this.draw();
      }
    }

    get scale() { return TILE * Math.pow(2, this.zoom); }

    /** Canvas pixel of a pointer event (the canvas may be drawn scaled by CSS). */
    point(e) {
      const r = this.canvas.getBoundingClientRect();
      return [(e.clientX - r.left) * this.canvas.width / r.width, (e.clientY - r.top) * this.canvas.height / r.height];
    }

    toWorld([px, py]) {
      return [this.cx + (px - this.canvas.width / 2) / this.scale, this.cy + (py - this.canvas.height / 2) / this.scale];
    }

    toScreen(wx, wy) {
      return [(wx - this.cx) * this.scale + this.canvas.width / 2, (wy - this.cy) * this.scale + this.canvas.height / 2];
    }

    setZoom(z) {
      this.zoom = Math.max(0, Math.min(20, z));
      this.draw();
    }

    zoomAt(delta, p) {
      const before = this.toWorld(p);
      this.zoom = Math.max(0, Math.min(20, this.zoom + delta));
      const after = this.toWorld(p);
      this.cx += before[0] - after[0];
      this.cy += before[1] - after[1];
      this.draw();
    }

    /** The tile at pick zoom under a world point. */
    tileAt([wx, wy]) {
      const n = Math.pow(2, this.pickZoom);
      const x = Math.floor(wx * n), y = Math.floor(wy * n);
      return x >= 0 && y >= 0 && x < n && y < n ? { z: this.pickZoom, x, y } : null;
    }

    down(e) {
      const p = this.point(e);
      try { this.canvas.setPointerCapture(e.pointerId); } catch (_) { /* synthetic pointer */ }
      this.drag = { start: p, last: p, moved: false, rect: !this.readOnly && this.mode === "rect" };
    }

    move(e) {
      if (!this.drag) return;
      const p = this.point(e);
      if (Math.hypot(p[0] - this.drag.start[0], p[1] - this.drag.start[1]) > 4) this.drag.moved = true;
      if (this.drag.rect) {
        this.rect = [this.drag.start, p];
      } else if (this.drag.moved) {
        this.cx -= (p[0] - this.drag.last[0]) / this.scale;
        this.cy -= (p[1] - this.drag.last[1]) / this.scale;
      }
      this.drag.last = p;
      this.draw();
    }

    up(e) {
      if (!this.drag) return;
      const d = this.drag;
      this.drag = null;
      const p = this.point(e);
      if (d.rect && d.moved) {
        this.rect = null;
        const a = this.toWorld(d.start), b = this.toWorld(p);
        this.addWorldBox(Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[0], b[0]), Math.max(a[1], b[1]));
      } else if (!d.moved && !this.readOnly && this.mode !== "pan") {
        const t = this.tileAt(this.toWorld(p));
        if (t) this.toggle(t);
      }
      this.rect = null;
      this.draw();
    }

    toggle(t) {
      const k = key(t.z, t.x, t.y);
      if (this.selected.has(k)) this.selected.delete(k);
      else this.selected.set(k, t);
      this.changed();
    }

    changed() {
      this.draw();
      this.onChange(this.selected.size);
    }

    /** Adds every pick-zoom tile a world box touches (at most `limit` more). */
    addWorldBox(x0, y0, x1, y1, limit) {
      const n = Math.pow(2, this.pickZoom);
      const clamp = (v) => Math.max(0, Math.min(n - 1, Math.floor(v * n)));
      const [ax, ay, bx, by] = [clamp(x0), clamp(y0), clamp(x1 - 1e-12), clamp(y1 - 1e-12)];
      const count = (bx - ax + 1) * (by - ay + 1);
      if (count > (limit || 10000)) throw new Error(count + " tiles at zoom " + this.pickZoom + "; at most 10000 per token: pick a lower zoom");
      for (let x = ax; x <= bx; x++) for (let y = ay; y <= by; y++) this.selected.set(key(this.pickZoom, x, y), { z: this.pickZoom, x, y });
      this.changed();
      return count;
    }

    /** Adds the pick-zoom tiles covering a bbox in degrees. */
    addBBox(minLon, minLat, maxLon, maxLat) {
      const [x0, y1] = project(minLon, minLat), [x1, y0] = project(maxLon, maxLat);
      return this.addWorldBox(x0, y0, x1, y1);
    }

    /** Adds the pick-zoom tiles a GeoJSON object (geometry, feature or collection) touches. */
    addGeoJSON(obj) {
      const n = Math.pow(2, this.pickZoom);
      const found = new Map();
      const addPoint = ([lon, lat]) => {
        const t = this.tileAt(project(lon, lat));
        if (t) found.set(key(t.z, t.x, t.y), t);
      };
      const addLine = (coords) => {
        coords.forEach(addPoint);
        for (let i = 1; i < coords.length; i++) {
          const a = project(...coords[i - 1]), b = project(...coords[i]);
          const steps = Math.ceil(Math.max(Math.abs(b[0] - a[0]), Math.abs(b[1] - a[1])) * n * 4);
          for (let s = 1; s < steps; s++) {
            const t = this.tileAt([a[0] + (b[0] - a[0]) * s / steps, a[1] + (b[1] - a[1]) * s / steps]);
            if (t) found.set(key(t.z, t.x, t.y), t);
          }
        }
      };
      const addPolygon = (rings) => {
        rings.forEach(addLine);
        const outer = rings[0].map(([lon, lat]) => project(lon, lat));
        const xs = outer.map((p) => p[0]), ys = outer.map((p) => p[1]);
        const [ax, bx] = [Math.floor(Math.min(...xs) * n), Math.floor(Math.max(...xs) * n)];
        const [ay, by] = [Math.floor(Math.min(...ys) * n), Math.floor(Math.max(...ys) * n)];
        if ((bx - ax + 1) * (by - ay + 1) > 100000) throw new Error("the polygon covers too many tiles at zoom " + this.pickZoom);
        for (let x = ax; x <= bx; x++) for (let y = ay; y <= by; y++) {
          if (inRing((x + 0.5) / n, (y + 0.5) / n, outer)) found.set(key(this.pickZoom, x, y), { z: this.pickZoom, x, y });
        }
      };
      const walk = (g) => {
        if (!g || typeof g !== "object") throw new Error("not a GeoJSON object");
        switch (g.type) {
          case "FeatureCollection": g.features.forEach(walk); break;
          case "Feature": walk(g.geometry); break;
          case "GeometryCollection": g.geometries.forEach(walk); break;
          case "Point": addPoint(g.coordinates); break;
          case "MultiPoint": g.coordinates.forEach(addPoint); break;
          case "LineString": addLine(g.coordinates); break;
          case "MultiLineString": g.coordinates.forEach(addLine); break;
          case "Polygon": addPolygon(g.coordinates); break;
          case "MultiPolygon": g.coordinates.forEach(addPolygon); break;
          default: throw new Error("unknown GeoJSON type " + JSON.stringify(g.type));
        }
      };
      walk(obj);
      if (this.selected.size + found.size > 10000) throw new Error(found.size + " tiles at zoom " + this.pickZoom + "; at most 10000 per token: pick a lower zoom");
      found.forEach((t, k) => this.selected.set(k, t));
      this.changed();
      return found.size;
    }

    clear() { this.selected.clear(); this.changed(); }

    /** The fence as the token API writes it. */
    getTiles() {
      return Array.from(this.selected.values()).map((t) => ({ tileX: t.x, tileY: t.y, zoom: t.z }));
    }

    setTiles(list) {
      this.selected.clear();
      (list || []).forEach((t) => this.selected.set(key(t.zoom, t.tileX, t.tileY), { z: t.zoom, x: t.tileX, y: t.tileY }));
      this.changed();
    }

    /** Centres and zooms the view on a list of API tiles. */
    fit(list) {
      if (!list || !list.length) { this.cx = 0.5; this.cy = 0.45; this.setZoom(1); return; }
      let x0 = 1, y0 = 1, x1 = 0, y1 = 0;
      for (const t of list) {
        const n = Math.pow(2, t.zoom);
        x0 = Math.min(x0, t.tileX / n); y0 = Math.min(y0, t.tileY / n);
        x1 = Math.max(x1, (t.tileX + 1) / n); y1 = Math.max(y1, (t.tileY + 1) / n);
      }
      this.cx = (x0 + x1) / 2; this.cy = (y0 + y1) / 2;
      const span = Math.max(x1 - x0, y1 - y0, 1e-9);
      this.setZoom(Math.max(0, Math.floor(Math.log2(Math.min(this.canvas.width, this.canvas.height) / (TILE * span))) - 1));
    }

    baseTile(z, x, y) {
      const k = key(z, x, y);
      if (this.tiles.has(k)) return this.tiles.get(k);
      this.tiles.set(k, null);
      if (this.base) {
        this.base(z, x, y).then((img) => { if (img) { this.tiles.set(k, img); this.draw(); } }).catch(() => {});
      }
      return null;
    }

    tileRect(z, x, y) {
      const n = Math.pow(2, z);
      const [sx, sy] = this.toScreen(x / n, y / n);
      const [ex, ey] = this.toScreen((x + 1) / n, (y + 1) / n);
      return [sx, sy, ex - sx, ey - sy];
    }

    draw() {
      if (this.pending) return;
      this.pending = true;
      requestAnimationFrame(() => { this.pending = false; this.paint(); });
    }

    paint() {
      const c = this.ctx, w = this.canvas.width, h = this.canvas.height;
      c.fillStyle = "#cfe3f3";
      c.fillRect(0, 0, w, h);
      const [wx0, wy0] = this.toWorld([0, 0]), [wx1, wy1] = this.toWorld([w, h]);
      // Land outline, then the gateway's raster tiles over it where they load.
      c.fillStyle = "#f3efe6";
      c.strokeStyle = "#9aa6b2";
      c.lineWidth = 1;
      c.beginPath();
      for (const ring of this.land) {
        ring.forEach(([x, y], i) => { const [sx, sy] = this.toScreen(x, y); if (i) c.lineTo(sx, sy); else c.moveTo(sx, sy); });
        c.closePath();
      }
      c.fill("evenodd");
      c.stroke();
      if (this.base) {
        const z = this.zoom, n = Math.pow(2, z);
        for (let x = Math.max(0, Math.floor(wx0 * n)); x <= Math.min(n - 1, Math.floor(wx1 * n)); x++) {
          for (let y = Math.max(0, Math.floor(wy0 * n)); y <= Math.min(n - 1, Math.floor(wy1 * n)); y++) {
            const img = this.baseTile(z, x, y);
            if (img) { const [sx, sy, tw, th] = this.tileRect(z, x, y); c.drawImage(img, sx, sy, tw, th); }
          }
        }
      }
      // The pick-zoom grid, when its tiles are big enough to click.
      const pn = Math.pow(2, this.pickZoom);
      if (!this.readOnly && this.scale / pn >= 6) {
        c.strokeStyle = "rgba(40,60,90,0.18)";
        c.beginPath();
        for (let x = Math.max(0, Math.floor(wx0 * pn)); x <= Math.min(pn, Math.ceil(wx1 * pn)); x++) {
          const [sx] = this.toScreen(x / pn, 0); c.moveTo(sx, Math.max(0, this.toScreen(0, 0)[1])); c.lineTo(sx, Math.min(h, this.toScreen(0, 1)[1]));
        }
        for (let y = Math.max(0, Math.floor(wy0 * pn)); y <= Math.min(pn, Math.ceil(wy1 * pn)); y++) {
          const [, sy] = this.toScreen(0, y / pn); c.moveTo(Math.max(0, this.toScreen(0, 0)[0]), sy); c.lineTo(Math.min(w, this.toScreen(1, 0)[0]), sy);
        }
        c.stroke();
      }
      // The caller's own fence: the new one must lie inside it.
      if (this.limit.length) {
        c.save();
        c.setLineDash([5, 4]);
        c.strokeStyle = "#c62828";
        c.lineWidth = 1.5;
        for (const t of this.limit) { const [sx, sy, tw, th] = this.tileRect(t.zoom, t.tileX, t.tileY); c.strokeRect(sx, sy, tw, th); }
        c.restore();
      }
      c.fillStyle = "rgba(31,111,235,0.35)";
      c.strokeStyle = "#1f6feb";
      c.lineWidth = 1.5;
      for (const t of this.selected.values()) {
        const [sx, sy, tw, th] = this.tileRect(t.z, t.x, t.y);
        c.fillRect(sx, sy, tw, th);
        c.strokeRect(sx, sy, tw, th);
      }
      if (this.rect) {
        const [[ax, ay], [bx, by]] = this.rect;
        c.strokeStyle = "#0b3d91";
        c.setLineDash([4, 3]);
        c.strokeRect(Math.min(ax, bx), Math.min(ay, by), Math.abs(bx - ax), Math.abs(by - ay));
        c.setLineDash([]);
      }
      c.fillStyle = "rgba(255,255,255,0.85)";
      c.fillRect(4, h - 22, 200, 18);
      c.fillStyle = "#1c2330";
      c.font = "12px system-ui, sans-serif";
      c.fillText("view zoom " + this.zoom + (this.readOnly ? "" : " · picking tiles at zoom " + this.pickZoom), 8, h - 9);
    }
  }

  window.TileMap = TileMap;
  window.TileMapProject = project;
})();
