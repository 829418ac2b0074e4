// Mint an RS256 JWT for dotgit with jose (npm install jose).
// Needs: PRIVATE_KEY (PKCS#8 PEM file), KID, ISS, SUB, AUD; optional SCOPE (default "repo:read").
import { readFileSync } from "node:fs";
import { SignJWT, importPKCS8 } from "jose";

const env = process.env;
const key = await importPKCS8(readFileSync(env.PRIVATE_KEY, "utf8"), "RS256");
const token = await new SignJWT({ scope: env.SCOPE ?? "repo:read" })
  .setProtectedHeader({ alg: "RS256", typ: "JWT", kid: env.KID })
  .setIssuer(env.ISS)
  .setSubject(env.SUB)
  .setAudience(env.AUD)
  .setIssuedAt()
  .setExpirationTime("10m")
  .sign(key);
console.log(token);
