import { describe, expect, it } from "vitest";
import { stackUrl } from "../scripts/lib/stack.ts";

describe("stackUrl", () => {
  it("is the loopback proxy port for a local stack", () => {
    expect(stackUrl({ DOMAIN: "localhost", PROXY_PORT: "9090" })).toBe("http://localhost:9090");
    expect(stackUrl({ DOMAIN: "127.0.0.1" })).toBe("http://localhost:8080");
    expect(stackUrl({})).toBe("http://localhost:8080");
  });

  it("is https on the domain for a server", () => {
    expect(stackUrl({ DOMAIN: " mlflow.example.com ", PROXY_PORT: "9090" })).toBe("https://mlflow.example.com");
  });
});
