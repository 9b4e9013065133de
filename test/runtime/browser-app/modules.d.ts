/** The `process` package's browser build: nextTick, env and the rest of Node's process, for pg. */
declare module 'process/browser.js' {
  const process: object;
  export default process;
}
