// Artifact locations: how each form MLflow records is read, and the one function that names keys and locations.
import { describe, expect, it } from "vitest";
import { classify, inferArtifactRoot, placement, relativeToRoot } from "../scripts/lib/migrate/locations.ts";

describe("artifact locations", () => {
  it("classifies every form MLflow records, percent-decoding file:// and mlflow-artifacts: paths", () => {
    expect(classify("file:///Users/John%20Smith/mlruns/1/abc/artifacts")).toEqual({ kind: "local", path: "/Users/John Smith/mlruns/1/abc/artifacts" });
    expect(classify("file://localhost/srv/mlruns/1")).toEqual({ kind: "local", path: "/srv/mlruns/1" });
    expect(classify("file:///C:/Users/Jo%C3%ABl/mlruns/0")).toEqual({ kind: "local", path: "/C:/Users/Joël/mlruns/0" });
    expect(classify("/srv/John Smith/mlruns/0")).toEqual({ kind: "local", path: "/srv/John Smith/mlruns/0" });
    expect(classify("file:///srv/100%/x")).toEqual({ kind: "local", path: "/srv/100%/x" }); // a lone % stays
    expect(classify("mlflow-artifacts:/1/abc/artifacts")).toEqual({ kind: "server", path: "1/abc/artifacts" });
    expect(classify("mlflow-artifacts://old-host:5000/1/a%20b/")).toEqual({ kind: "server", path: "1/a b" });
    expect(classify("s3://bucket/1/abc").kind).toBe("remote");
    expect(classify("gs://bucket/x").kind).toBe("remote");
    expect(classify("wasbs://c@a.blob.core.windows.net/x").kind).toBe("remote");
    expect(classify("models:/m-123").kind).toBe("reference");
    expect(classify("runs:/abc/model").kind).toBe("reference");
    expect(classify("dummy-source").kind).toBe("reference");
  });

  it("infers the root from the experiments' folders, decoded", () => {
    expect(inferArtifactRoot(["file:///Users/John%20Smith/mlruns/1", "/Users/John Smith/mlruns/0", "s3://b/2"])).toBe("/Users/John Smith/mlruns");
    expect(inferArtifactRoot(["/srv/mlflow/mlartifacts/mlruns/0", "file:///srv/mlflow/mlartifacts/exp-A"])).toBe("/srv/mlflow/mlartifacts");
    expect(inferArtifactRoot(["mlflow-artifacts:/1", "s3://b/2"])).toBeUndefined();
  });

  it("places a path below the root: the key and the location name the same object", () => {
    const c = classify("file:///Users/John%20Smith/mlruns/1/abc/artifacts");
    const rel = relativeToRoot(c, "/Users/John Smith/mlruns/")!;
    expect(rel).toBe("1/abc/artifacts");
    expect(placement(rel)).toEqual({ key: "1/abc/artifacts", location: "mlflow-artifacts:/1/abc/artifacts" });
    expect(relativeToRoot(classify("/elsewhere/1"), "/Users/John Smith/mlruns")).toBeUndefined();
    expect(relativeToRoot(classify("/Users/John Smith/mlruns"), "/Users/John Smith/mlruns")).toBe("");
    expect(relativeToRoot(classify("mlflow-artifacts:/7/x"), undefined)).toBe("7/x");
    // A name with a space stays as the MLflow server writes it; %, ? and # are escaped so the client reads them back.
    for (const name of ["a b/c.txt", "100%/x?y#z"]) {
      const p = placement(name);
      expect(p.key).toBe(name);
      expect(classify(p.location)).toEqual({ kind: "server", path: name });
    }
  });
});
