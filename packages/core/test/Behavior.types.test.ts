/**
 * What the compiler accepts and infers: `Behavior.make` takes its types from
 * every callback, `conn.auth` is the type a route's hook produces, and a
 * behaviour that needs an auth type cannot be mounted where nothing
 * produces it. The `@ts-expect-error` lines fail the typecheck (part of CI)
 * if they ever compile; the runtime assertions check the values behind them.
 */
import { describe, expect, expectTypeOf, it } from "@effect/vitest"
import { Behavior, type Connection, Handshake, Route, ServerOptions } from "@switchboard/core"
import { TestClient } from "@switchboard/testing"
import { Context, Data, Effect } from "effect"

class Clock2 extends Context.Service<Clock2, { readonly now: Effect.Effect<number> }>()("test/Clock2") {}
class Store extends Context.Service<Store, { readonly save: (text: string) => Effect.Effect<void> }>()("test/Store") {}
class Audit extends Context.Service<Audit, { readonly log: (text: string) => Effect.Effect<void> }>()("test/Audit") {}

class BadCommand extends Data.TaggedError("BadCommand")<{ readonly text: string }> {}
class Forbidden extends Data.TaggedError("Forbidden")<{}> {}

interface Token {
  readonly user: string
  readonly admin: boolean
}

const tokenFromQuery: Handshake.Authenticate<Token, Audit> = (request) =>
  Effect.gen(function* () {
    const audit = yield* Audit
    const user = request.query.get("user")
    if (user === null) return yield* Effect.fail(new Handshake.HandshakeRejected({ status: 401, message: "no user" }))
    yield* audit.log(`upgrade by ${user}`)
    return { user, admin: user === "root" }
  })

// every callback fails differently and needs its own service: no type arguments spelled out
const Admin = Behavior.make({
  init: (conn: Connection.Connection<never, Token>) => Effect.map(Effect.service(Clock2), () => conn.auth.user.length),
  onMessage: (conn, message, count) =>
    typeof message !== "string"
      ? Effect.fail(new BadCommand({ text: "binary" }))
      : conn.auth.admin
        ? Effect.flatMap(Effect.service(Store), (store) => store.save(message)).pipe(Effect.as(count + 1))
        : Effect.fail(new Forbidden()),
  onClose: (conn, _reason, count) =>
    Effect.flatMap(Effect.service(Audit), (audit) => audit.log(`${conn.auth.user} sent ${count}`))
})

/** Lines the compiler must refuse; never run (CI's typecheck fails if an expected error disappears). */
export const refused = () => {
  const Greeter = Behavior.make({
    init: (conn: Connection.Connection<never, Token>) => conn.send(conn.auth.user)
  })
  // @ts-expect-error a behaviour that reads a Token needs one in the test client too
  TestClient.connect(Greeter, { keepalive: false })
  const wrongHook: Handshake.Authenticate<{ readonly user: number }> = () => Effect.succeed({ user: 1 })
  // @ts-expect-error the hook's result is not the Token the behaviour reads
  Route.make({ authenticate: wrongHook, behavior: Greeter })
  ServerOptions.resolve(
    // @ts-expect-error nothing on this server produces a Token
    { routes: { "/admin": Greeter } },
    10
  )
  ServerOptions.resolve(
    {
      authenticate: wrongHook,
      // @ts-expect-error the server's hook produces { user: number }
      routes: { "/admin": Greeter }
    },
    10
  )
}

describe("Behavior.make types", () => {
  it("takes the services of every callback, and each callback's own errors", () => {
    expectTypeOf(Admin).toEqualTypeOf<Behavior.Behavior<never, Clock2 | Store | Audit, Token>>()
    const Plain = Behavior.make({ onMessage: (conn, message) => conn.send(message) })
    expectTypeOf(Plain).toEqualTypeOf<Behavior.Behavior<never, never, unknown>>()
    // a route's requirements: its hook's and its behaviour's
    const route = Route.make({ authenticate: tokenFromQuery, behavior: Admin, idleTimeout: "1 minute" })
    expectTypeOf(route).toEqualTypeOf<Route.Route<Audit | Clock2 | Store>>()
    expect(Route.isRoute(route)).toBe(true)
    expect(Route.isRoute(Admin)).toBe(false)
    expect(route.authenticate).toBe(tokenFromQuery)
    expect(route.idleTimeout).toBe("1 minute")
  })

  it.effect("a route's own hook replaces the server's for its path; the others keep the server's", () =>
    Effect.gen(function* () {
      const serverHook: Handshake.Authenticate<{ readonly user: string }> = () => Effect.succeed({ user: "guest" })
      const Lobby = Behavior.make({
        init: (conn: Connection.Connection<never, { readonly user: string }>) => conn.send(conn.auth.user)
      })
      const Open = Behavior.make({ onMessage: (conn, message) => conn.send(message) })
      const resolved = yield* ServerOptions.resolve(
        {
          authenticate: serverHook,
          routes: {
            "/lobby": Lobby,
            "/open": { behavior: Open, maxMessageBytes: 1024 },
            "/admin": Route.make({ authenticate: tokenFromQuery, behavior: Admin, maxMessageBytes: 2048 })
          }
        },
        10
      )
      expect(resolved.routes.get("/lobby")?.authenticate).toBe(serverHook)
      expect(resolved.routes.get("/open")?.authenticate).toBe(serverHook)
      expect(resolved.routes.get("/admin")?.authenticate).toBe(tokenFromQuery)
      expect(resolved.routes.get("/admin")?.settings.maxMessageBytes).toBe(2048)
      const bare = yield* ServerOptions.resolve({ routes: { "/open": Open } }, 10)
      expect(bare.routes.get("/open")?.authenticate).toBeUndefined()
    })
  )

  it.effect("conn.auth is what the behaviour declared, given by the test client", () =>
    Effect.gen(function* () {
      const Greeter = Behavior.make({
        init: (conn: Connection.Connection<never, Token>) => {
          expectTypeOf(conn.auth).toEqualTypeOf<Token>()
          return conn.send(`${conn.auth.user}${conn.auth.admin ? " (admin)" : ""}`)
        }
      })
      const client = yield* TestClient.connect(Greeter, { keepalive: false, auth: { user: "ada", admin: true } })
      expect(yield* client.expectText).toBe("ada (admin)")
    })
  )
})
