use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::{assert_problem, spawn_app};

fn ids(res: &crate::Resp) -> Vec<String> {
    res.body["data"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn places_form_a_tree() {
    let app = spawn_app().await;
    let campus = app.post("/v2/places", json!({"name": "Campus", "metadata": {"region": "north"}})).await;
    assert_eq!(campus.status, StatusCode::CREATED);
    let campus_id = campus.body["id"].as_str().unwrap().to_owned();
    assert!(campus_id.starts_with("plc_"));
    let hall = app.post("/v2/places", json!({"name": "Hall", "parentId": campus_id})).await;
    let hall_id = hall.body["id"].as_str().unwrap().to_owned();
    let floor = app.post("/v2/places", json!({"name": "Floor 1", "parentId": hall_id})).await;
    let floor_id = floor.body["id"].as_str().unwrap().to_owned();

    assert_eq!(ids(&app.get("/v2/places?parent=root").await), [campus_id.as_str()]);
    assert_eq!(ids(&app.get(&format!("/v2/places?parent={campus_id}")).await), [hall_id.as_str()]);
    assert_eq!(ids(&app.get("/v2/places").await).len(), 3);
    assert_eq!(app.get(&format!("/v2/places/{hall_id}")).await.body["parentId"], campus_id);

    let cycle = app.put(&format!("/v2/places/{campus_id}"), json!({"parentId": floor_id})).await;
    assert_problem(&cycle, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(cycle.fields(), ["parentId"]);
    let moved = app.put(&format!("/v2/places/{floor_id}"), json!({"parentId": null, "name": "Annex"})).await;
    assert_eq!(moved.status, StatusCode::OK);
    assert_eq!((moved.body["parentId"].clone(), moved.body["name"].clone()), (Value::Null, json!("Annex")));

    for (body, field) in [
        (json!({"name": ""}), "name"),
        (json!({"name": "x", "parentId": "plc_01m81heykw99vxnkrsn2930z34"}), "parentId"),
        (json!({"name": "x", "parentId": "dev_01m81heykw99vxnkrsn2930z34"}), "parentId"),
        (json!({"name": "x", "size": 3}), "size"),
    ] {
        let res = app.post("/v2/places", body.clone()).await;
        assert_problem(&res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(res.fields(), [field], "{body}");
    }

    let busy = app.delete(&format!("/v2/places/{campus_id}")).await;
    assert_problem(&busy, StatusCode::CONFLICT, "conflict");
    assert!(busy.body["detail"].as_str().unwrap().contains("1 child place"));
    assert_eq!(app.delete(&format!("/v2/places/{hall_id}")).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.delete(&format!("/v2/places/{campus_id}")).await.status, StatusCode::NO_CONTENT);
    assert_problem(&app.get(&format!("/v2/places/{campus_id}")).await, StatusCode::NOT_FOUND, "not_found");
    assert_problem(&app.get("/v2/places/not-an-id").await, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn devices_live_in_places() {
    let app = spawn_app().await;
    let (place, device, path) = app.place_and_device("meter").await;
    let other = app.post("/v2/places", json!({"name": "Plant B"})).await.body["id"].as_str().unwrap().to_owned();
    let got = app.get(&format!("/v2/devices/{device}")).await;
    assert_eq!((got.body["placeId"].as_str(), got.body["deviceType"].as_str()), (Some(place.as_str()), Some("meter")));

    let moved = app
        .put(
            &format!("/v2/devices/{device}"),
            json!({"placeId": other, "externalIds": {"serial": "A-1"}, "deviceType": "inverter"}),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{:?}", moved.body);
    assert_eq!(moved.body["externalIds"], json!({"serial": "A-1"}));
    assert_eq!(ids(&app.get(&format!("/v2/devices?place={other}")).await), [device.as_str()]);
    assert_eq!(ids(&app.get(&format!("/v2/devices?place={place}")).await), Vec::<String>::new());
    let old = app.get(&format!("/v2/integrations/validate-path?path={path}")).await;
    assert_eq!(old.body["valid"], false, "the device moved away from the old path");

    for (body, field) in [
        (json!({"name": "d", "deviceType": "meter"}), "placeId"),
        (json!({"name": "d", "placeId": place, "deviceType": ""}), "deviceType"),
        (json!({"name": "d", "placeId": "plc_01m81heykw99vxnkrsn2930z34", "deviceType": "meter"}), "placeId"),
        (json!({"name": "d", "placeId": place, "deviceType": "meter", "externalIds": {"": "x"}}), "externalIds"),
    ] {
        let res = app.post("/v2/devices", body.clone()).await;
        assert_problem(&res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(res.fields(), [field], "{body}");
    }
    assert_eq!(app.delete(&format!("/v2/devices/{device}")).await.status, StatusCode::NO_CONTENT);
    assert_problem(&app.get(&format!("/v2/devices/{device}")).await, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn paths_validate_and_browse() {
    let app = spawn_app().await;
    let (place, device, device_path) = app.place_and_device("meter").await;
    let child = app.post("/v2/places", json!({"name": "Wing", "parentId": place})).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let ok = app.get(&format!("/v2/integrations/validate-path?path={device_path}")).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.body["valid"], true);
    assert_eq!(ok.body["resource"]["resourceType"], "device");
    assert_eq!(ok.body["resource"]["deviceType"], "meter");
    for (path, why) in [
        ("/places/nope", "not a resource path"),
        ("/", "root"),
        (&format!("/places/{child}/devices/{device}") as &str, "no Place or device"),
    ] {
        let res = app.get(&format!("/v2/integrations/validate-path?path={path}")).await;
        assert_eq!(res.body["valid"], false, "{path}");
        assert!(res.body["reason"].as_str().unwrap().contains(why), "{path}: {:?}", res.body);
    }
    let missing = app.get("/v2/integrations/validate-path").await;
    assert_problem(&missing, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(missing.fields(), ["path"]);

    assert_eq!(ids(&app.get("/v2/integrations/resources").await), [place.as_str()]);
    let under = app.get(&format!("/v2/integrations/resources?path=/places/{place}")).await;
    let mut found: Vec<(String, String)> = under.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["resourceType"].as_str().unwrap().to_owned(), e["path"].as_str().unwrap().to_owned()))
        .collect();
    found.sort();
    assert_eq!(found, [("device".to_owned(), device_path.clone()), ("place".to_owned(), format!("/places/{child}"))]);
    assert_eq!(app.get(&format!("/v2/integrations/resources?path={device_path}")).await.body["data"], json!([]));
    assert_problem(
        &app.get("/v2/integrations/resources?path=/places/plc_01m81heykw99vxnkrsn2930z34").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let bad = app.get("/v2/integrations/resources?path=/x").await;
    assert_problem(&bad, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(bad.fields(), ["path"]);
}
