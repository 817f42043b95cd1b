// The chat page: one WebSocket to /chat, JSON messages both ways.
;(() => {
  const $ = (id) => document.getElementById(id)
  const state = { ws: undefined, you: undefined, nick: "", room: "", members: new Map(), joined: false }
  // after a lost connection: the attempt number, and the timer of the next one
  const reconnect = { attempt: 0, timer: undefined, lost: false }

  // Two members may share a nick: then each is shown with a short tag derived
  // from its member id ("ada#3f2a"), in the member list and on its messages.
  const tag = (id) => {
    let hash = 0x811c9dc5 // FNV-1a
    for (let i = 0; i < id.length; i++) hash = Math.imul(hash ^ id.charCodeAt(i), 0x01000193)
    return (hash >>> 0).toString(16).padStart(8, "0").slice(0, 4)
  }
  let nickCounts = new Map()
  const membersChanged = () => {
    nickCounts = new Map()
    for (const nick of state.members.values()) nickCounts.set(nick, (nickCounts.get(nick) ?? 0) + 1)
  }
  // tagged when another member (not `id` itself) has this nick
  const label = (id, nick) => {
    const others = (nickCounts.get(nick) ?? 0) - (state.members.get(id) === nick ? 1 : 0)
    return others > 0 ? `${nick}#${tag(id)}` : nick
  }
  const relabel = () => {
    for (const who of document.querySelectorAll("#messages .who")) {
      who.textContent = label(who.dataset.from, who.dataset.nick)
    }
  }

  const time = (at) => new Date(at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
  const scroll = () => {
    const list = $("messages")
    list.scrollTop = list.scrollHeight
  }
  const addLine = (className, text) => {
    const li = document.createElement("li")
    li.className = className
    li.textContent = text
    $("messages").append(li)
    scroll()
  }
  const addMessage = (entry, extra = "") => {
    const li = document.createElement("li")
    const bubble = document.createElement("div")
    bubble.className = `msg${entry.from === state.you ? " mine" : ""}${extra}`
    const who = document.createElement("span")
    who.className = "who"
    who.dataset.from = entry.from
    who.dataset.nick = entry.nick
    who.textContent = label(entry.from, entry.nick)
    const text = document.createElement("span")
    text.className = "text"
    text.textContent = entry.text
    const when = document.createElement("time")
    when.textContent = time(entry.at)
    bubble.append(who, text, when)
    li.append(bubble)
    $("messages").append(li)
    scroll()
  }
  // Search results: the best matches of the room's history, best first, in a panel above the messages.
  const renderResults = (message) => {
    const list = $("results-list")
    list.replaceChildren()
    for (const hit of message.results) {
      const li = document.createElement("li")
      const who = document.createElement("span")
      who.className = "who"
      who.textContent = label(hit.from, hit.nick)
      const text = document.createElement("span")
      text.className = "text"
      text.textContent = hit.text
      const when = document.createElement("time")
      when.textContent = time(hit.at)
      li.append(who, text, when)
      list.append(li)
    }
    const shown = message.results.length < message.total ? ` (the best ${message.results.length})` : ""
    const matches = message.total === 1 ? "1 match" : `${message.total} matches`
    $("results-title").textContent = `${matches} for “${message.query}” in #${message.room}${shown}`
    $("results").hidden = false
  }
  const renderMembers = () => {
    const list = $("members")
    list.replaceChildren()
    for (const [id, nick] of state.members) {
      const li = document.createElement("li")
      li.textContent = label(id, nick)
      if (id === state.you) li.className = "me"
      list.append(li)
    }
    $("member-count").textContent = String(state.members.size)
    relabel()
  }
  const setStatus = (text, kind) => {
    $("status").textContent = text
    $("status-dot").className = `dot ${kind}`
  }
  // offline: the member list greys out and nothing can be sent (what is typed stays in the box)
  const setOnline = (online) => {
    document.body.classList.toggle("offline", !online)
    for (const id of ["send", "search"]) $(id).disabled = !online
    $("text").placeholder = online ? "Write a message…" : "Offline: reconnecting…"
  }

  const handle = (message) => {
    switch (message.type) {
      case "joined":
        state.you = message.you
        state.members = new Map(message.members.map((m) => [m.id, m.nick]))
        membersChanged()
        state.nick = state.members.get(message.you) ?? state.nick
        $("room-name").textContent = message.room
        $("messages").replaceChildren()
        for (const entry of message.history) addMessage(entry, " history")
        addLine(
          "notice",
          reconnect.lost
            ? `Reconnected: back in #${message.room} as ${label(message.you, state.nick)}`
            : `You joined #${message.room} as ${label(message.you, state.nick)}`
        )
        state.joined = true
        reconnect.lost = false
        reconnect.attempt = 0
        setOnline(true)
        renderMembers()
        $("login").hidden = true
        $("chat").hidden = false
        $("text").focus()
        break
      case "message":
        addMessage(message)
        break
      case "presence":
        // the label is taken while the member is listed: a nick it shared is still shared
        if (message.event === "joined") state.members.set(message.id, message.nick)
        membersChanged()
        addLine("notice", `${label(message.id, message.nick)} ${message.event}`)
        if (message.event === "left") state.members.delete(message.id)
        membersChanged()
        renderMembers()
        break
      case "results":
        $("search").disabled = false
        renderResults(message)
        break
      case "error":
        $("search").disabled = false
        if ($("chat").hidden) $("login-error").textContent = message.message
        else addLine("err", message.message)
        break
    }
  }

  const connect = () =>
    new Promise((resolve, reject) => {
      const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/chat`)
      ws.addEventListener("open", () => {
        setStatus("online", "online")
        resolve(ws)
      })
      ws.addEventListener("message", (event) => handle(JSON.parse(event.data)))
      ws.addEventListener("close", (event) => {
        state.ws = undefined
        reject(new Error("connection closed"))
        if (!state.joined) {
          setStatus(`offline (${event.code})`, "offline")
          $("search").disabled = false
          return
        }
        // in a room: try again with backoff, and rejoin it when the server is back
        setOnline(false)
        if (!reconnect.lost) {
          reconnect.lost = true
          addLine("err", `Connection lost (${event.code}); reconnecting…`)
        }
        scheduleReconnect()
      })
      state.ws = ws
    })

  // 0.5 s, 1 s, 2 s … up to 10 s between attempts, each with jitter so that a restarted server is not hit at once
  const scheduleReconnect = () => {
    clearTimeout(reconnect.timer)
    const delay = Math.min(10_000, 500 * 2 ** reconnect.attempt) * (0.5 + Math.random() / 2)
    reconnect.attempt++
    setStatus(`offline: reconnecting in ${Math.ceil(delay / 1000)} s`, "offline")
    reconnect.timer = setTimeout(async () => {
      setStatus("reconnecting…", "offline")
      try {
        const ws = await connect()
        ws.send(JSON.stringify({ type: "join", room: state.room, nick: state.nick }))
      } catch {
        // its close event scheduled the next attempt
      }
    }, delay)
  }

  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault()
    $("login-error").textContent = ""
    state.nick = $("nick").value.trim()
    state.room = $("room").value.trim()
    try {
      const ws = state.ws ?? (await connect())
      ws.send(JSON.stringify({ type: "join", room: state.room, nick: state.nick }))
    } catch {
      $("login-error").textContent = "Could not reach the server."
    }
  })

  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault()
    const query = $("query").value.trim()
    if (query === "" || state.ws === undefined) return
    // one search at a time: the button is enabled again by its results (or an error)
    $("search").disabled = true
    state.ws.send(JSON.stringify({ type: "search", query }))
  })
  $("results-close").addEventListener("click", () => {
    $("results").hidden = true
  })

  $("say-form").addEventListener("submit", (event) => {
    event.preventDefault()
    const text = $("text").value.trim()
    // offline, the text stays in the box until it can be sent
    if (text === "" || state.ws === undefined || state.ws.readyState !== WebSocket.OPEN) return
    state.ws.send(JSON.stringify({ type: "say", text }))
    $("text").value = ""
  })
})()
