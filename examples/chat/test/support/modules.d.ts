// Older phoenix.js releases installed under npm aliases (CHANNELS.md §7): same API as "phoenix".
declare module "phoenix1812" {
  export * from "phoenix";
}
declare module "phoenix17" {
  export * from "phoenix";
}
