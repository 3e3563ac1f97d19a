import { defineSchema, defineTable } from "convex/server";
import { v } from "convex/values";

export default defineSchema({
  blobs: defineTable({ data: v.string(), note: v.optional(v.string()) }),
});
