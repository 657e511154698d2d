//! Config fragments the suites share: the gateway at a real address, and the paths in
//! front of the shared MapProxy and pygeoapi (`support::upstreams`), written once.

/// `[server]` listening on `port` with `public_url` its real address (OWSLib and the
/// console follow the URLs the gateway writes), and a `[store]`.
pub fn server_at(port: u16) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n[store]\npath = \"tilegate.db\"\n"
    )
}

/// The `basemap` path under `parent`: MapProxy's `osm` layer over WMS, WMTS (KVP and
/// REST, its `GLOBAL_WEBMERCATOR` set) and XYZ tiles; `mp` is `MapProxy::base`.
pub fn mapproxy_basemap(parent: &str, mp: &str) -> String {
    format!(
        r#"[[path]]
id = "basemap"
parent = "{parent}"
kind = "raster"
layers = ["osm"]
webmercator_matrix_sets = ["GLOBAL_WEBMERCATOR"]
wmts_rest_template = "/{{Layer}}/{{TileMatrixSet}}/{{TileMatrix}}/{{TileCol}}/{{TileRow}}.{{Format}}"
[path.upstream]
wms = "{mp}/service"
wmts = "{mp}/service"
wmts_rest = "{mp}/wmts"
xyz = "{mp}/tiles/osm/GLOBAL_WEBMERCATOR/{{z}}/{{x}}/{{y}}.png"
"#
    )
}

/// The `places` path (under `parent`, if any): pygeoapi's OGC API Features collection;
/// `pg` is `PyGeoApi::base`.
pub fn pygeoapi_places(parent: Option<&str>, pg: &str) -> String {
    let parent = parent.map(|p| format!("parent = \"{p}\"\n")).unwrap_or_default();
    format!(
        r#"[[path]]
id = "places"
{parent}kind = "vector"
layers = ["places"]
properties = ["name", "population", "country", "secret_note"]
server = "pygeoapi"
[path.upstream]
ogcapi = "{pg}"
"#
    )
}
