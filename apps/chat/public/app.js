// The chat page: one WebSocket to /chat, JSON messages both ways.
;(() => {
  const $ = (id) => document.getElementById(id)
  const state = { ws: undefined, you: undefined, nick: "", room: "", members: new Map() }

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
    bubble.className = `msg${entry.nick === state.nick ? " mine" : ""}${extra}`
    const who = document.createElement("span")
    who.className = "who"
    who.textContent = entry.nick
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
  const renderMembers = () => {
    const list = $("members")
    list.replaceChildren()
    for (const [id, nick] of state.members) {
      const li = document.createElement("li")
      li.textContent = nick
      if (id === state.you) li.className = "me"
      list.append(li)
    }
    $("member-count").textContent = String(state.members.size)
  }
  const setStatus = (text, kind) => {
    $("status").textContent = text
    $("status-dot").className = `dot ${kind}`
  }

  const handle = (message) => {
    switch (message.type) {
      case "joined":
        state.you = message.you
        state.members = new Map(message.members.map((m) => [m.id, m.nick]))
        $("room-name").textContent = message.room
        $("messages").replaceChildren()
        for (const entry of message.history) addMessage(entry, " history")
        addLine("notice", `You joined #${message.room} as ${state.nick}`)
        renderMembers()
        $("login").hidden = true
        $("chat").hidden = false
        $("text").focus()
        break
      case "message":
        addMessage(message)
        break
      case "presence":
        if (message.event === "joined") state.members.set(message.id, message.nick)
        else state.members.delete(message.id)
        addLine("notice", `${message.nick} ${message.event === "joined" ? "joined" : "left"}`)
        renderMembers()
        break
      case "error":
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
        setStatus(`offline (${event.code})`, "offline")
        state.ws = undefined
        reject(new Error("connection closed"))
      })
      state.ws = ws
    })

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

  $("say-form").addEventListener("submit", (event) => {
    event.preventDefault()
    const text = $("text").value.trim()
    if (text === "" || state.ws === undefined) return
    state.ws.send(JSON.stringify({ type: "say", text }))
    $("text").value = ""
  })
})()
