//! WFS GML through the gateway for fenced and property-fenced tokens (#13.7): the
//! upstream serves captured MapServer 8 answers (`tests/fixtures/gml/`, via the test
//! upstream's `/gml/{fixture}`), the gateway filters them while they stream.

use bytes::Bytes;
use http::Method;
use tilegate::policy::Tier;
use tilegate::spatial::Fence;

use crate::support::TestGateway;

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"
public_url = "https://maps.example.org"
[store]
path = "tilegate.db"
[[path]]
id = "places"
kind = "vector"
server = "mapserver"
layers = ["places", "ms:places"]
properties = ["id", "name", "population", "country", "secret_note"]
[path.upstream]
wfs = "http://{up}/gml/mapserver_wfs200_places_3857.xml"
[[path]]
id = "places11"
kind = "vector"
server = "mapserver"
layers = ["places", "ms:places"]
[path.upstream]
wfs = "http://{up}/gml/mapserver_wfs110_places.xml"
[[path]]
id = "lakes11"
kind = "vector"
server = "mapserver"
layers = ["lakes"]
[path.upstream]
wfs = "http://{up}/gml/mapserver_wfs110_lakes_urn.xml"
[[path]]
id = "lakes11_any"
kind = "vector"
layers = ["lakes"]
[path.upstream]
wfs = "http://{up}/gml/mapserver_wfs110_lakes_urn.xml"
[[path]]
id = "topp"
kind = "vector"
layers = ["topp:roads"]
wfs_namespaces = { topp = "http://www.openplans.org/topp" }
[path.upstream]
wfs = "http://{up}/wfs"
[[path]]
id = "schema"
kind = "vector"
server = "mapserver"
layers = ["lakes", "places"]
[path.upstream]
wfs = "http://{up}/gml/mapserver_dft200.xsd"
"#;

/// Benelux (z6 32/21) and the Arabian Sea tile where Tromsø lands if read longitude first.
fn fence() -> Fence {
    Fence::new(Some(&[(6, 32, 21), (6, 44, 28)]), None).expect("fence")
}

const GET_FEATURE_20: &str =
    "/ogc/wfs/places?SERVICE=WFS&VERSION=2.0.0&REQUEST=GetFeature&TYPENAMES=places&SRSNAME=EPSG:3857";

/// QGIS asks WFS servers for GML only; a fenced, property-fenced token used to get 403.
#[tokio::test]
async fn qgis_gml_getfeature_with_a_fenced_property_fenced_token_is_filtered() {
    let gw = TestGateway::with_config(CONFIG).await;
    let token = gw.token_fenced("places", Tier::ViewPlus, fence(), Some(&["name"])).await;
    let reply = gw.get(GET_FEATURE_20, &token).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.text();
    let ids: Vec<&str> = body.split("gml:id=\"places.").skip(1).filter_map(|s| s.split('"').next()).collect();
    let ids: Vec<&str> = ids.into_iter().filter(|id| !id.contains('.')).collect();
    assert_eq!(ids, ["brussels", "amsterdam", "mumbai", "benelux_zone"]);
    assert!(!body.contains("secret_note") && !body.contains("<ms:population>"), "hidden properties");
    assert!(
        body.contains(r#"numberMatched="unknown""#) && !body.contains("numberReturned"),
        "counts outside the fence"
    );
    let up = gw.upstream.addr.to_string();
    assert!(!body.contains(&up), "the upstream's address leaked: {body}");
    assert!(body.contains("https://maps.example.org/ogc/wfs/places?SERVICE=WFS"), "schema location mapped");
    // What was judged is what was forwarded, asked for the fence's box only (#12, WFS
    // paging: `STARTINDEX` past the last visible feature counted the ones outside): the
    // box of both fence tiles, latitude first, in the URN every WFS 2.0 server reads so.
    let seen = gw.upstream.last();
    let (judged, bbox) = seen.uri.split_once("&BBOX=").expect("a BBOX was added");
    assert!(judged.ends_with("REQUEST=GetFeature&TYPENAMES=places&SRSNAME=EPSG:3857"), "{}", seen.uri);
    let (numbers, crs) = bbox.rsplit_once(',').expect("a CRS");
    assert_eq!(crs, "urn:ogc:def:crs:EPSG::4326");
    let b: Vec<f64> = numbers.split(',').map(|n| n.parse().expect("number")).collect();
    let lonlat = fence().bounds_lonlat().expect("bounds");
    let expected = [lonlat.min_y, lonlat.min_x, lonlat.max_y, lonlat.max_x];
    assert!(b.iter().zip(expected).all(|(got, want)| (got - want).abs() < 1e-6), "{b:?} vs {expected:?}");
}

#[tokio::test]
async fn an_unfenced_token_gets_the_answer_as_the_upstream_wrote_it() {
    let gw = TestGateway::with_config(CONFIG).await;
    let token = gw.token(&[("places", Tier::ViewPlus)]).await;
    let reply = gw.get(GET_FEATURE_20, &token).await;
    assert_eq!(reply.status, 200);
    assert!(reply.text().contains("secret_note") && reply.text().contains(r#"numberReturned="25""#));
}

/// MapServer 8 writes `srsName="EPSG:4326"` latitude first in every WFS 1.1 answer: read
/// in the order the request asked for (the URN), or refused when the request did not say.
#[tokio::test]
async fn wfs11_short_srsname_is_read_in_the_requested_order_or_refused() {
    let gw = TestGateway::with_config(CONFIG).await;
    let lakes = gw.token_fenced("lakes11", Tier::ViewPlus, fence(), None).await;
    let reply = gw
        .get(
            "/ogc/wfs/lakes11?SERVICE=WFS&VERSION=1.1.0&REQUEST=GetFeature&TYPENAME=lakes&SRSNAME=urn:ogc:def:crs:EPSG::4326",
            &lakes,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(reply.text().contains("Brussels pond") && !reply.text().contains("Arctic"), "{}", reply.text());
    // Round 10: on a path that does not say its server is MapServer (or GeoServer), a
    // latitude-first label is no promise (QGIS Server writes such labels longitude
    // first): the same answer fails closed.
    let any = gw.token_fenced("lakes11_any", Tier::ViewPlus, fence(), None).await;
    let reply = gw
        .get(
            "/ogc/wfs/lakes11_any?SERVICE=WFS&VERSION=1.1.0&REQUEST=GetFeature&TYPENAME=lakes&SRSNAME=urn:ogc:def:crs:EPSG::4326",
            &any,
        )
        .await;
    assert_eq!(reply.status, 502, "{}", reply.text());
    assert!(!reply.text().contains("Brussels pond") && !reply.text().contains("Arctic"), "{}", reply.text());
    let places = gw.token_fenced("places11", Tier::ViewPlus, fence(), None).await;
    let reply = gw.get("/ogc/wfs/places11?SERVICE=WFS&VERSION=1.1.0&REQUEST=GetFeature&TYPENAME=places", &places).await;
    assert_eq!(reply.status, 502, "{}", reply.text());
    assert!(!reply.text().contains("Tromso"));
}

#[tokio::test]
async fn formats_still_not_filterable_are_refused_with_a_reason() {
    let gw = TestGateway::with_config(CONFIG).await;
    let token = gw.token_fenced("places", Tier::ViewPlus, fence(), Some(&["name"])).await;
    let before = gw.upstream.seen().len();
    for query in [
        "SERVICE=WFS&VERSION=2.0.0&REQUEST=GetPropertyValue&TYPENAMES=places&VALUEREFERENCE=name&BBOX=50,4,51,5,EPSG:4326",
        "SERVICE=WFS&VERSION=2.0.0&REQUEST=GetFeature&TYPENAMES=places&OUTPUTFORMAT=csv&BBOX=50,4,51,5,EPSG:4326",
    ] {
        let reply = gw.get(&format!("/ogc/wfs/places?{query}"), &token).await;
        assert_eq!(reply.status, 403, "{query}");
        assert!(reply.text().contains("cannot filter"), "{query}: {}", reply.text());
    }
    assert_eq!(gw.upstream.seen().len(), before, "refused before forwarding");
}

#[tokio::test]
async fn mapserver_describe_feature_type_is_trimmed_for_a_property_fenced_token() {
    let gw = TestGateway::with_config(CONFIG).await;
    let token =
        gw.token_fenced("schema", Tier::ViewPlus, Fence::new(None, None).expect("fence"), Some(&["name"])).await;
    let reply = gw
        .get("/ogc/wfs/schema?SERVICE=WFS&VERSION=2.0.0&REQUEST=DescribeFeatureType&TYPENAMES=lakes,places", &token)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.text();
    assert!(body.contains(r#"name="msGeometry""#) && body.contains(r#"name="name""#));
    assert!(!body.contains("secret_note") && !body.contains(r#"name="owner""#), "{body}");
}

/// #12.3 (attack class: tilegate compared prefixed names as strings while GeoServer
/// resolves them): a WFS XML body that binds the covered prefix to another workspace's
/// namespace URI, on the root, on `Query` or as a default namespace, never reaches the
/// upstream; the declared binding does.
#[tokio::test]
async fn wfs_xml_namespace_rebinding_never_reaches_the_upstream() {
    let gw = TestGateway::with_config(CONFIG).await;
    let token = gw.token(&[("topp", Tier::ViewPlus)]).await;
    let auth = format!("Bearer {token}");
    let post = |body: String| {
        let gw = &gw;
        let auth = auth.clone();
        async move {
            gw.send(
                Method::POST,
                "/ogc/wfs/topp",
                &[("authorization", &auth), ("content-type", "text/xml")],
                Bytes::from(body),
            )
            .await
        }
    };
    let query = |root_ns: &str, query_attrs: &str, name: &str| {
        format!(
            r#"<wfs:GetFeature service="WFS" version="2.0.0" outputFormat="application/json" xmlns:wfs="http://www.opengis.net/wfs/2.0" {root_ns}><wfs:Query {query_attrs} typeNames="{name}"/></wfs:GetFeature>"#
        )
    };
    let declared = r#"xmlns:topp="http://www.openplans.org/topp""#;
    let reply = post(query(declared, "", "topp:roads")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let forwarded = gw.upstream.seen().len();
    for body in [
        query(r#"xmlns:topp="http://www.openplans.org/secret""#, "", "topp:roads"),
        query(declared, r#"xmlns:topp="http://www.openplans.org/secret""#, "topp:roads"),
        query(declared, r#"xmlns="http://www.openplans.org/secret""#, "roads"),
        query(declared, r#"xmlns:s="http://www.openplans.org/topp""#, "s:roads"),
    ] {
        let reply = post(body.clone()).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.text());
    }
    assert_eq!(gw.upstream.seen().len(), forwarded, "no rebinding body reached the upstream");
}
