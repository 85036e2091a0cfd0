-- Argo CD health check for iomt.medinaii.io MedicalDevice.
--
-- Argo CD sets the global obj to the live object. The script returns a
-- table with status (Healthy, Progressing, Degraded or Suspended) and
-- message. It uses only Lua's base and table libraries, which are all that
-- Argo CD gives scripts kept in argocd-cm. A missing field, or one of an
-- unexpected type, never keeps it from answering.

-- readyFalse is the health a False Ready condition stands for, by reason.
-- A reason that is not listed counts as Degraded. It is global so that
-- tests can hold it against the reasons the API defines.
readyFalse = {
  -- From the Segmented condition.
  NoSegment = "Degraded", -- no SegmentPolicy selects the device
  SegmentConflict = "Degraded", -- two or more segments select it
  Observing = "Suspended", -- its segment is in Observe mode
  -- From the IdentityIssued condition.
  CertificatePending = "Progressing", -- cert-manager is still issuing
  IssueFailed = "Degraded",
  SecretConflict = "Degraded",
  CertManagerMissing = "Degraded",
  NamespaceNotEnrolled = "Degraded", -- the operator issues nothing there
  -- From quarantine and verification.
  Quarantined = "Degraded",
  VerificationFailed = "Degraded",
}

local function tbl(v)
  if type(v) == "table" then
    return v
  end
  return nil
end

-- str returns a string or a number as a string, anything else as "".
local function str(v)
  if type(v) == "string" then
    return v
  end
  if type(v) == "number" then
    return tostring(v)
  end
  return ""
end

-- num returns a number, or a string that holds one, as a number; else nil.
local function num(v)
  if type(v) == "number" or type(v) == "string" then
    return tonumber(v)
  end
  return nil
end

-- join puts the parts that are not empty together, sep between them.
local function join(sep, ...)
  local out = ""
  for i = 1, select("#", ...) do
    local part = str(select(i, ...))
    if part ~= "" then
      if out ~= "" then
        out = out .. sep
      end
      out = out .. part
    end
  end
  return out
end

-- condition returns the condition of type kind, or an empty table.
local function condition(status, kind)
  for _, c in ipairs(tbl(status.conditions) or {}) do
    if type(c) == "table" and c.type == kind then
      return c
    end
  end
  return {}
end

local function waiting(generation, observed)
  if generation == nil then
    return "waiting for the operator to report status"
  end
  local msg = "waiting for the operator to observe generation " .. str(generation)
  if observed ~= nil then
    msg = msg .. " (status is for generation " .. str(observed) .. ")"
  end
  return msg
end

local function assess(o)
  -- Status that does not describe the current spec says nothing yet.
  local generation = num((tbl(o.metadata) or {}).generation)
  local status = tbl(o.status)
  if status == nil then
    return "Progressing", waiting(generation)
  end
  local observed = num(status.observedGeneration)
  if observed == nil or (generation ~= nil and observed < generation) then
    return "Progressing", waiting(generation, observed)
  end
  local ready = condition(status, "Ready")
  local readyObserved = num(ready.observedGeneration)
  if generation ~= nil and readyObserved ~= nil and readyObserved < generation then
    return "Progressing", waiting(generation, readyObserved)
  end

  -- A quarantined device is Degraded, whatever else holds.
  local q = tbl(status.quarantine) or {}
  local qc = condition(status, "Quarantined")
  local state = str(q.state)
  if state == "Restricted" or state == "Isolated" or qc.status == "True" then
    local reason = str(q.reason)
    if reason == "" then
      reason = str(qc.reason)
    end
    local message = str(q.message)
    if message == "" then
      message = str(qc.message)
    end
    if state ~= "Restricted" and state ~= "Isolated" then
      state = ""
    end
    if reason ~= "" then
      reason = "reason " .. reason
    end
    local what = "quarantined"
    local detail = join(", ", state, reason)
    if detail ~= "" then
      what = what .. " (" .. detail .. ")"
    end
    return "Degraded", join(": ", what, message)
  end

  -- Otherwise Ready decides.
  if next(ready) == nil then
    return "Progressing", "waiting for the operator to set the Ready condition"
  end
  local reason = str(ready.reason)
  local message = str(ready.message)
  if ready.status == "True" then
    local vulnerable = condition(status, "Vulnerable")
    if vulnerable.status == "True" then
      local affected = join(": ", "firmware listed as affected", vulnerable.message)
      message = join("; ", message, affected)
    end
    if message == "" then
      message = "Ready"
    end
    return "Healthy", message
  end
  if ready.status == "False" then
    local health = readyFalse[reason] or "Degraded"
    message = join(": ", reason, message)
    if reason == "VerificationFailed" and state == "None" then
      message = message .. "; not quarantined: its segment only observes failed verification"
    end
    return health, message
  end
  local shown = str(ready.status)
  if shown == "" then
    shown = "not set"
  end
  return "Progressing", join(": ", "Ready is " .. shown, reason, message)
end

local hs = {}
hs.status, hs.message = assess(tbl(obj) or {})
return hs
