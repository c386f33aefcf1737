-- Paces each wrk connection: it waits WRK_DELAY_MS before every request, so C connections send about
-- C * 1000 / (WRK_DELAY_MS + latency) requests per second (wrk itself has no fixed-rate mode).
local ms = tonumber(os.getenv("WRK_DELAY_MS") or "0")

function delay()
    return ms
end
