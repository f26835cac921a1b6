export function NotFound() {
  return (
    <>
      <h1>Page not found</h1>
      <p>
        Nothing lives at this address. Go back to <a href="/">the blog</a>.
      </p>
    </>
  );
}
