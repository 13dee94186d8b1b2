-- wrk script: single-sentence POST /v1/classify requests, cycling through a few sentences.
local sentences = {
  "Two soldiers were killed when their armoured vehicle hit a mine near the river.",
  "A missile struck an apartment block overnight, killing nine residents.",
  "The foreign minister condemned the attack and demanded an urgent meeting.",
  "Analysts expect fighting around the port to intensify once the rains end.",
  "Delegations from both sides met in Geneva on Tuesday.",
  "Drone footage shows a T-90M tank destroyed near the village.",
  "Power was cut to 200,000 homes after strikes on the grid.",
  "Parliament voted to extend martial law by ninety days.",
}
local counter = 0
request = function()
  counter = counter + 1
  local body = '{"sentences": ["' .. sentences[(counter % #sentences) + 1] .. '"]}'
  return wrk.format("POST", "/v1/classify", {["Content-Type"] = "application/json"}, body)
end
