/**
 * Type-checks the examples in the packages' doc comments (issue 8): every
 * ```ts block inside a `/** … *\/` comment in packages/*\/src, be it under an
 * `@example` tag or in a module's header, and every ```ts block of the guides
 * and the reference in docs/, must compile against the current API, so that
 * none uses a name it never defines. Runs after `tsc -b` in
 * `pnpm run typecheck`.
 *
 * Each block is written, with the comment's ` * ` stripped, to
 * `.examples/<package>/<path>/<n>.ts` (gitignored, rebuilt on every run); a
 * guide's block whose first line is `// name.ts` is written as
 * `<path>/name.ts` instead, so that the guide's other blocks can import it
 * as `./name.ts` (a job module and its worker entry, say). The folder has
 * a `node_modules` of links to the workspace packages and their
 * dependencies, so that `@switchboard/*`, `effect`, `@effect/platform-node` and
 * the rest resolve from there as they would in a user's project; tsc checks
 * the folder with the repository's options except noUnusedLocals and
 * noUnusedParameters (an example shows values without using them). Errors are
 * printed at the line and column of the doc comment they came from.
 */
import { execFileSync } from "node:child_process"
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync
} from "node:fs"
import { createRequire } from "node:module"
import { dirname, join, relative, resolve, sep } from "node:path"

const root = resolve(import.meta.dirname, "..")
const out = join(root, ".examples")
const posix = (path: string) => path.split(sep).join("/")

interface Example {
  /** the source file, relative to the repository */
  readonly source: string
  /** its number in the source file, from 1 */
  readonly index: number
  /** the source line (from 1) of the example's first line of code */
  readonly line: number
  /** for each line of the example, the width of the ` * ` stripped from it */
  readonly indents: ReadonlyArray<number>
  readonly code: string
}

/** A ```ts block being read: where its code starts, its lines, and the width stripped from each. */
interface Block {
  readonly line: number
  readonly lines: Array<string>
  readonly indents: Array<number>
}

const exampleOf = (source: string, index: number, block: Block): Example => ({
  source,
  index,
  line: block.line,
  indents: block.indents,
  code: `${block.lines.join("\n")}\n`
})

const sourceFiles = (dir: string): Array<string> =>
  readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) return sourceFiles(path)
    return entry.isFile() && entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts") ? [path] : []
  })

const packages = readdirSync(join(root, "packages"), { withFileTypes: true })
  .filter((entry) => entry.isDirectory() && existsSync(join(root, "packages", entry.name, "package.json")))
  .map((entry) => entry.name)

const extract = (file: string): Array<Example> => {
  const text = readFileSync(file, "utf8")
  const source = posix(relative(root, file))
  const examples: Array<Example> = []
  for (const comment of text.matchAll(/\/\*\*[\s\S]*?\*\//g)) {
    const firstLine = text.slice(0, comment.index).split("\n").length
    const lines = comment[0].split("\n")
    let open: Block | undefined
    lines.forEach((raw, i) => {
      const prefix = /^\s*(?:\/\*\*|\*(?!\/))? ?/.exec(raw)![0]
      const line = raw.slice(prefix.length).replace(/\s*\*\/$/, "")
      if (open === undefined) {
        if (/^```(?:ts|typescript)\s*$/.test(line.trim())) open = { line: firstLine + i + 1, lines: [], indents: [] }
      } else if (line.trim() === "```") {
        examples.push(exampleOf(source, examples.length + 1, open))
        open = undefined
      } else {
        open.lines.push(line)
        open.indents.push(prefix.length)
      }
    })
    if (open !== undefined) throw new Error(`${source}:${open.line - 1}: a \`\`\`ts block that never closes`)
  }
  return examples
}

/** The ```ts blocks of a Markdown guide (docs/), indented ones (in a list) included. */
const extractMarkdown = (file: string): Array<Example> => {
  const source = posix(relative(root, file))
  const examples: Array<Example> = []
  let open: (Block & { readonly indent: number }) | undefined
  readFileSync(file, "utf8")
    .split("\n")
    .forEach((raw, i) => {
      if (open === undefined) {
        const fence = /^(\s*)```(?:ts|typescript)\s*$/.exec(raw)
        if (fence !== null) open = { line: i + 2, indent: fence[1]!.length, lines: [], indents: [] }
      } else if (raw.trim() === "```") {
        examples.push(exampleOf(source, examples.length + 1, open))
        open = undefined
      } else {
        const width = Math.min(open.indent, /^\s*/.exec(raw)![0].length)
        open.lines.push(raw.slice(width))
        open.indents.push(width)
      }
    })
  if (open !== undefined) throw new Error(`${source}:${open.line - 1}: a \`\`\`ts block that never closes`)
  return examples
}

const markdownFiles = (dir: string): Array<string> =>
  readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) return markdownFiles(path)
    return entry.isFile() && entry.name.endsWith(".md") ? [path] : []
  })

// A node_modules in which the examples find what a user's project would have.
const link = (name: string, target: string) => {
  const path = join(out, "node_modules", name)
  if (existsSync(path)) return
  mkdirSync(dirname(path), { recursive: true })
  symlinkSync(realpathSync(target), path, "junction")
}
const linkDependencies = () => {
  for (const pkg of packages) {
    const dir = join(root, "packages", pkg)
    link(JSON.parse(readFileSync(join(dir, "package.json"), "utf8")).name, dir)
  }
  for (const pkg of packages) {
    const modules = join(root, "packages", pkg, "node_modules")
    if (!existsSync(modules)) continue
    for (const entry of readdirSync(modules)) {
      if (entry.startsWith(".")) continue
      const names = entry.startsWith("@")
        ? readdirSync(join(modules, entry)).map((name) => `${entry}/${name}`)
        : [entry]
      for (const name of names) link(name, join(modules, name))
    }
  }
}

const started = performance.now()
rmSync(out, { recursive: true, force: true })
const examples = [
  ...packages.flatMap((pkg) => {
    const src = join(root, "packages", pkg, "src")
    return existsSync(src) ? sourceFiles(src).sort().flatMap(extract) : []
  }),
  // the guides' and the reference's examples too (the README's span several files, so not those)
  ...markdownFiles(join(root, "docs")).sort().flatMap(extractMarkdown)
]
if (examples.length === 0) {
  console.log("No doc examples to check.")
  process.exit(0)
}
const byFile = new Map<string, Example>()
for (const example of examples) {
  const path = example.source.replace(/^packages\/([^/]+)\/src\//, "$1/").replace(/\.(ts|md)$/, "")
  // a guide's block that opens with `// name.ts` is that module, which the guide's other blocks import as `./name.ts`
  const named = example.source.endsWith(".md") ? /^\/\/ ([\w-]+\.ts)\s*$/.exec(example.code.split("\n")[0] ?? "") : null
  const file = named ? `${path}/${named[1]}` : `${path}/${example.index}.ts`
  byFile.set(file, example)
  mkdirSync(dirname(join(out, file)), { recursive: true })
  writeFileSync(join(out, file), example.code)
}
linkDependencies()
writeFileSync(
  join(out, "tsconfig.json"),
  `${JSON.stringify(
    {
      extends: "../tsconfig.base.json",
      compilerOptions: {
        // an example may show a value without using it
        noUnusedLocals: false,
        noUnusedParameters: false,
        // an example without imports is still its own module
        moduleDetection: "force"
      },
      include: [...new Set([...byFile.keys()].map((file) => `${file.split("/")[0]}/**/*.ts`))]
    },
    null,
    2
  )}\n`
)

const tsc = join(dirname(createRequire(import.meta.url).resolve("typescript/package.json")), "bin", "tsc")
let output = ""
let failed = false
try {
  execFileSync(process.execPath, [tsc, "-p", join(out, "tsconfig.json"), "--pretty", "false"], {
    cwd: root,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"]
  })
} catch (error) {
  failed = true
  const { stdout, stderr } = error as { stdout?: string; stderr?: string }
  output = `${stdout ?? ""}${stderr ?? ""}`
}

// `.examples/core/CloseCode/1.ts(3,1): error TS2304: …` becomes
// `packages/core/src/CloseCode.ts:9:4 (example 1 of 1, from line 7): error TS2304: …`
const counts = new Map<string, number>()
for (const example of examples) counts.set(example.source, (counts.get(example.source) ?? 0) + 1)
const errors = output
  .split("\n")
  .filter((line) => line.trim() !== "")
  .map((line) => {
    const match = /^(.+?)\((\d+),(\d+)\): (.*)$/.exec(line)
    if (match === null) return line
    const [, file, row, column, message] = match
    const example = byFile.get(posix(relative(out, resolve(root, file!))))
    if (example === undefined) return `${posix(relative(root, resolve(root, file!)))}:${row}:${column}: ${message}`
    const at = Number(row) - 1
    return `${example.source}:${example.line + at}:${Number(column) + (example.indents[at] ?? 0)} (example ${
      example.index
    } of ${counts.get(example.source)}, from line ${example.line}): ${message}`
  })

const seconds = ((performance.now() - started) / 1000).toFixed(1)
if (failed) {
  console.error(errors.join("\n"))
  console.error(
    `\nDoc examples do not compile (${examples.length} checked in ${seconds}s). Each is checked as its own module` +
      ` from .examples/ (see scripts/check-examples.ts): import what it uses and define what it refers to.`
  )
  process.exit(1)
}
console.log(`${examples.length} doc examples compile (${seconds}s).`)
