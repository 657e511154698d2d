//! What a token can see, for the console: the declared paths its grant reaches (kind,
//! layers, declared properties, the caller's own tier and fences on each) and, per
//! layer, the **Integrate** URLs of every protocol the layer configures.
//!
//! The URLs are built here, once, from the same route scheme `route::route` reads, so
//! the console only renders them and `tests/integration/console.rs` fetches every one
//! of them through the gateway. Never an upstream URL: only the gateway's public ones.

use serde_json::{json, Value};

use crate::config::Config;
use crate::paths::{PathConfig, PathKind};
use crate::policy::{Access, Grant, Scope, Tier};

/// One protocol's Integrate entry: what a client is configured with (`url`, may be a
/// `{z}/{x}/{y}` template), a concrete request that answers 2xx for a token that may
/// view the layer (`check`), and the client settings from the README.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Integration {
    pub protocol: &'static str,
    pub label: &'static str,
    pub url: String,
    pub check: String,
    pub qgis: Option<String>,
    pub gdal: Option<String>,
}

/// The Integrate entries of one path, under the gateway's public base URL (no trailing
/// slash). Folders have none: a protocol is served only for a layer.
///
/// ```
/// use tilegate::admin::integrate::integrations;
/// use tilegate::paths::{PathConfig, PathKind, TileTemplate};
/// let mut p = PathConfig::new("osm", PathKind::Raster);
/// p.upstream.xyz = Some(TileTemplate("http://up/{z}/{x}/{y}.png".into()));
/// let urls = integrations("https://maps.example.org", &p);
/// assert_eq!(urls[0].url, "https://maps.example.org/ogc/xyz/osm/{z}/{x}/{y}.png");
/// assert_eq!(urls[0].check, "https://maps.example.org/ogc/xyz/osm/0/0/0.png");
/// ```
pub fn integrations(base: &str, path: &PathConfig) -> Vec<Integration> {
    if path.kind == PathKind::Folder {
        return Vec::new();
    }
    let id = path.id.as_str();
    let u = &path.upstream;
    let mut out = Vec::new();
    if u.xyz.is_some() {
        let url = format!("{base}/ogc/xyz/{id}/{{z}}/{{x}}/{{y}}.png");
        out.push(Integration {
            protocol: "xyz",
            label: "XYZ tiles",
            check: format!("{base}/ogc/xyz/{id}/0/0/0.png"),
            qgis: Some(format!("Browser ▸ XYZ Tiles ▸ New Connection, URL {url}")),
            gdal: Some(format!("gdal_translate -of PNG \"{base}/ogc/xyz/{id}/0/0/0.png\" tile.png")),
            url,
        });
    }
    if u.mvt.is_some() {
        let url = format!("{base}/ogc/mvt/{id}/{{z}}/{{x}}/{{y}}");
        out.push(Integration {
            protocol: "mvt",
            label: "Vector tiles (MVT)",
            check: format!("{base}/ogc/mvt/{id}/0/0/0"),
            qgis: Some(format!("Browser ▸ Vector Tiles ▸ New Generic Connection, URL {url}")),
            gdal: Some(format!("ogrinfo \"MVT:{base}/ogc/mvt/{id}/0/0/0\"")),
            url,
        });
    }
    if u.wmts.is_some() {
        let caps = format!("{base}/ogc/wmts/{id}?SERVICE=WMTS&REQUEST=GetCapabilities");
        out.push(Integration {
            protocol: "wmts",
            label: "WMTS capabilities",
            url: caps.clone(),
            check: caps.clone(),
            qgis: Some(format!("Layer ▸ Add Layer ▸ Add WMS/WMTS Layer ▸ New, URL {caps}")),
            gdal: Some(format!("gdalinfo \"WMTS:{caps}\"")),
        });
    }
    if u.wms.is_some() {
        let url = format!("{base}/ogc/wms/{id}");
        out.push(Integration {
            protocol: "wms",
            label: "WMS",
            check: format!("{url}?SERVICE=WMS&REQUEST=GetCapabilities&VERSION=1.3.0"),
            qgis: Some(format!("Layer ▸ Add Layer ▸ Add WMS/WMTS Layer ▸ New, URL {url}")),
            gdal: Some(format!("gdalinfo \"WMS:{url}?SERVICE=WMS&VERSION=1.1.1&REQUEST=GetCapabilities\"")),
            url,
        });
    }
    if u.wfs.is_some() {
        let url = format!("{base}/ogc/wfs/{id}");
        out.push(Integration {
            protocol: "wfs",
            label: "WFS",
            check: format!("{url}?SERVICE=WFS&REQUEST=GetCapabilities&VERSION=2.0.0"),
            qgis: Some(format!("Layer ▸ Add Layer ▸ Add WFS Layer ▸ New, URL {url}")),
            gdal: Some(format!("ogrinfo \"WFS:{url}?VERSION=2.0.0&OUTPUTFORMAT=geojson\"")),
            url,
        });
    }
    if u.wcs.is_some() {
        let url = format!("{base}/ogc/wcs/{id}");
        out.push(Integration {
            protocol: "wcs",
            label: "WCS",
            check: format!("{url}?SERVICE=WCS&REQUEST=GetCapabilities&VERSION=2.0.1"),
            qgis: Some(format!("Layer ▸ Add Layer ▸ Add WCS Layer ▸ New, URL {url}")),
            gdal: Some(format!("gdalinfo \"WCS:{url}?VERSION=2.0.1\"")),
            url,
        });
    }
    if u.ogcapi.is_some() {
        let url = format!("{base}/ogc/api/{id}");
        out.push(Integration {
            protocol: "ogcapi",
            label: "OGC API landing page",
            check: format!("{url}/?f=json"),
            qgis: Some(format!("Layer ▸ Add Layer ▸ Add WFS Layer ▸ New, Version \"OGC API - Features\", URL {url}")),
            gdal: Some(format!("ogrinfo \"OAPIF:{url}\"")),
            url,
        });
    }
    if u.pmtiles.is_some() {
        // A PMTiles archive: its TileJSON (vector archives under /ogc/mvt, raster under
        // /ogc/xyz) and, in range mode, the archive itself for PMTiles-aware clients.
        let family = if path.kind == PathKind::Vector { "mvt" } else { "xyz" };
        let tilejson = format!("{base}/ogc/{family}/{id}/tilejson.json");
        out.push(Integration {
            protocol: "pmtiles",
            label: "PMTiles archive (TileJSON)",
            check: tilejson.clone(),
            qgis: None,
            gdal: None,
            url: tilejson,
        });
        if path.pmtiles_range {
            let archive = format!("{base}/path/{id}/archive.pmtiles");
            out.push(Integration {
                protocol: "pmtiles_range",
                label: "PMTiles archive (range requests)",
                check: archive.clone(),
                qgis: None,
                gdal: Some(format!("ogrinfo \"/vsicurl/{archive}\"")),
                url: archive,
            });
        }
    }
    if u.martin.is_some() {
        // One entry per covered martin source: its TileJSON (what MapLibre and
        // OpenLayers are configured with) and the tile template it advertises.
        for source in &path.layers {
            let tilejson = format!("{base}/ogc/martin/{id}/{source}");
            out.push(Integration {
                protocol: "martin",
                label: "martin source (TileJSON)",
                check: tilejson.clone(),
                qgis: Some(format!(
                    "Browser ▸ Vector Tiles ▸ New Generic Connection, URL {base}/ogc/martin/{id}/{source}/{{z}}/{{x}}/{{y}}"
                )),
                gdal: Some(format!("ogrinfo \"MVT:{base}/ogc/martin/{id}/{source}/0/0/0\"")),
                url: tilejson,
            });
        }
    }
    if u.titiler.is_some() {
        // One entry per declared dataset (a prefix names no single dataset to show).
        for dataset in path.titiler_datasets.iter().filter(|d| !d.ends_with('/')) {
            let q = percent_encoding::utf8_percent_encode(dataset, percent_encoding::NON_ALPHANUMERIC);
            let tilejson = format!("{base}/ogc/titiler/{id}/cog/WebMercatorQuad/tilejson.json?url={q}");
            out.push(Integration {
                protocol: "titiler",
                label: "TiTiler dataset (TileJSON)",
                check: tilejson.clone(),
                qgis: Some(format!(
                    "Browser ▸ XYZ Tiles ▸ New Connection, URL {base}/ogc/titiler/{id}/cog/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}.png?url={q}"
                )),
                gdal: Some(format!(
                    "gdal_translate -of PNG \"{base}/ogc/titiler/{id}/cog/tiles/WebMercatorQuad/0/0/0.png?url={q}\" tile.png"
                )),
                url: tilejson,
            });
        }
    }
    if u.base.is_some() {
        let url = format!("{base}/path/{id}/");
        out.push(Integration {
            protocol: "path",
            label: "Pass-through",
            check: url.clone(),
            qgis: None,
            gdal: None,
            url,
        });
    }
    out
}

impl Integration {
    pub fn to_json(&self) -> Value {
        json!({
            "protocol": self.protocol,
            "label": self.label,
            "url": self.url,
            "check": self.check,
            "qgis": self.qgis,
            "gdal": self.gdal,
        })
    }
}

/// The `GET /account/security/paths` answer: the calling token (never its secret)
/// and every declared path its grant reaches, parents before children.
/// Whether the caller can use an Integrate entry at all: the pass-through needs scope
/// `all`, `viewPlus` and no fence of either kind (its answers are relayed unread), the
/// PMTiles range mode scope `all` and no property fence, WFS and WCS `viewPlus` (their
/// data requests need it). Other entries are offered to
/// every token that sees the path; the gateway judges each request anyway.
fn usable(i: &Integration, caller: &Grant, a: &Access) -> bool {
    match i.protocol {
        "path" => {
            caller.scope == Scope::All && a.tier >= Tier::ViewPlus && a.fence.is_unlimited() && a.properties.is_none()
        }
        "pmtiles_range" => caller.scope == Scope::All && a.properties.is_none(),
        // What WFS and WCS are opened for (GetFeature, GetCoverage) needs viewPlus; a view
        // token would get capabilities and then a refusal for every layer it adds.
        "wfs" | "wcs" => a.tier >= Tier::ViewPlus,
        _ => true,
    }
}

pub fn paths_json(config: &Config, caller: &Grant) -> Value {
    let base = config.server.public_url.trim_end_matches('/');
    let mut visible: Vec<(&PathConfig, &Access)> =
        config.paths.iter().filter_map(|p| caller.access_for(p).map(|a| (p.as_ref(), a))).collect();
    // Root first, then depth-first by id: the order the console draws the tree in.
    visible.sort_by(|(a, _), (b, _)| {
        let key = |p: &PathConfig| p.lineage.iter().rev().map(|id| id.to_string()).collect::<Vec<_>>();
        key(a).cmp(&key(b))
    });
    let paths: Vec<Value> = visible
        .iter()
        .map(|(p, a)| {
            // Only a parent the caller also sees is named: the tree never reveals a
            // folder the token cannot see.
            let parent = p.lineage.get(1).filter(|id| visible.iter().any(|(q, _)| q.id == **id));
            let mut geo = serde_json::Map::new();
            if let Some(tiles) = crate::store::tiles_json(&a.fence) {
                geo.insert("tiles".into(), Value::Array(tiles));
            }
            if let Some(z) = a.fence.max_zoom() {
                geo.insert("maxZoom".into(), json!(z));
            }
            let geo = if geo.is_empty() { Value::Null } else { Value::Object(geo) };
            // A property-fenced token is never told the names it cannot see.
            let properties = p.properties.as_ref().map(|all| match &a.properties {
                Some(seen) => all.iter().filter(|n| seen.contains(n)).cloned().collect::<Vec<_>>(),
                None => all.clone(),
            });
            json!({
                "id": p.id.as_str(),
                "parent": parent.map(|id| id.as_str()),
                "kind": p.kind.as_str(),
                "layers": p.layers,
                "properties": properties,
                "access": {
                    "accessTier": a.tier.as_str(),
                    "grantedOn": a.path_id,
                    "geoFence": geo,
                    "propertyFence": a.properties.as_deref(),
                },
                "integrate": integrations(base, p)
                    .iter()
                    .filter(|i| usable(i, caller, a))
                    .map(Integration::to_json)
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "token": {
            "id": caller.token_id.to_string(),
            "scope": caller.scope.as_str(),
            "expiresAt": caller.expires_at.and_then(crate::store::rfc3339),
        },
        "publicUrl": base,
        "queryToken": config.tokens.allow_query_token,
        "paths": paths,
    })
}
