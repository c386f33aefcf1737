// The start-up yardstick for `skiff run` (bench/startup): a minimal ASP.NET Core app whose /readyz answers 200 once
// Kestrel listens. `peer --urls http://127.0.0.1:PORT`.
var app = WebApplication.CreateSlimBuilder(args).Build();
app.MapGet("/readyz", () => "ok");
app.Run();
