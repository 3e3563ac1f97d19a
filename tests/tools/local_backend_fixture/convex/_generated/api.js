// Hand-written stand-in for `npx convex codegen` output: untyped function references.
export { anyApi as api, anyApi as internal } from "convex/server";
